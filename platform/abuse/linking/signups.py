"""The features of one sign-up the signals compare: its network, mailbox, naming template and client."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable

from abuse.linking.records import SignupFact
from abuse.linking.weights import (
    DIGITS,
    FREE_MAIL_DOMAINS,
    IPV4_PREFIX,
    IPV6_PREFIX,
    MIN_PATTERN_STEM,
    NUMBER_IN_LOCAL_PART,
    NUMBER_PLACEHOLDER,
    UNLINKABLE_V4,
    UNLINKABLE_V6,
    is_scripted_client,
)
from accounts.emails import (
    DOMAIN_ALIASES,
    DOT_INSENSITIVE_DOMAINS,
    HYPHEN_TAG_DOMAINS,
    split_email,
)

# --- Features of one sign-up ---------------------------------------------------------------------------------------


class SignupFeatures:
    """A fact with everything the signals compare computed once."""

    __slots__ = (
        "card",
        "created_at",
        "disposable",
        "domain",
        "email",
        "ip",
        "mailbox",
        "network",
        "numbers",
        "organization_id",
        "scripted_client",
        "segments",
        "shared_domain",
        "template",
        "template_shown",
        "untagged_local",
        "user_agent",
    )

    def __init__(self, fact: SignupFact, *, disposable: Callable[[str], bool]) -> None:
        if fact.created_at.tzinfo is None or fact.created_at.utcoffset() is None:
            raise ValueError(f"sign-up of organization {fact.organization_id} has a naive created_at")
        self.organization_id = fact.organization_id
        self.created_at = fact.created_at
        self.user_agent = (fact.user_agent or "").strip()
        self.scripted_client = is_scripted_client(self.user_agent)
        self.card = (fact.card_fingerprint or "").strip() or None
        self.ip, self.network = _linkable_address(fact.ip_address)
        self.email = fact.email.strip()
        self.domain = self.mailbox = self.untagged_local = self.template = self.template_shown = None
        self.numbers: tuple[str, ...] = ()
        self.shared_domain = self.disposable = False
        try:
            local, domain = split_email(self.email)
        except ValueError:
            pass  # not an address: no email signals
        else:
            domain = DOMAIN_ALIASES.get(domain, domain)
            untagged = _untagged_local(local.lower(), domain)
            box = untagged.replace(".", "") if domain in DOT_INSENSITIVE_DOMAINS else untagged
            self.domain = domain
            self.untagged_local = untagged
            self.mailbox = f"{box}@{domain}"
            self.disposable = disposable(domain)
            self.shared_domain = domain in FREE_MAIL_DOMAINS or self.disposable
            self.template, self.template_shown, self.numbers = _pattern_of(box)
        # Ids of the bursts (see `_bursts`) this sign-up is part of.
        self.segments: list[int] = []


@functools.lru_cache(maxsize=16_384)  # one address often signs up many times, and parsing is the costliest step
def _linkable_address(value: str | None) -> tuple[str | None, str | None]:
    """The address in its compressed form and its /24 (/64), or (None, None) when it is missing, invalid or not a
    public client's."""
    if not value:
        return None, None
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None, None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            # `::ffff:203.0.113.7` is how a dual-stack socket reports an IPv4 client.
            address = address.ipv4_mapped
        elif address.scope_id:
            return None, None  # `fe80::1%eth0`: an interface's address, not a client's
    number = int(address)
    if address.version == 4:
        if any(number & mask == base for mask, base in UNLINKABLE_V4):
            return None, None
        network = ipaddress.IPv4Address(number >> (32 - IPV4_PREFIX) << (32 - IPV4_PREFIX))
        return str(address), f"{network}/{IPV4_PREFIX}"
    if any(number & mask == base for mask, base in UNLINKABLE_V6):
        return None, None
    network = ipaddress.IPv6Address(number >> (128 - IPV6_PREFIX) << (128 - IPV6_PREFIX))
    return str(address), f"{network}/{IPV6_PREFIX}"


def _untagged_local(local: str, domain: str) -> str:
    """The local part without a subaddress tag. Unlike `canonical_email` (which decides uniqueness, and must never
    merge two mailboxes a server could deliver apart), linking strips `+tag` on every domain: Postfix, Exim,
    Google Workspace and Microsoft 365 all deliver it to the base mailbox, so `a+1@` and `a+2@` on any domain are
    one person's. Yahoo's `-keyword` is stripped only on Yahoo: elsewhere hyphens are part of names (`jean-luc`)."""
    base = local.split("+", 1)[0]
    if domain in HYPHEN_TAG_DOMAINS:
        base = base.split("-", 1)[0]
    return base or local


def _pattern_of(box: str) -> tuple[str | None, str | None, tuple[str, ...]]:
    """A mailbox's local part as a naming template and the numbers that fill it, wherever they are:
    `user17` -> ("user{n}", "user{n}", ("17",)), `user1-x` -> ("user{n}x", "user{n}-x", ("1",)). The first is what
    two sign-ups must share (separators around a number are its punctuation: `user.1`, `user_2`, `user3` are one
    template), the second is how evidence shows it. A name without a number is its scheme's first, unnumbered
    member: `john` -> ("john{n}", "john{n}", ("",)), so that `john@` and `john2@` share a template. (None, None, ())
    when what is left besides the numbers is too short or has no letter to be a naming scheme."""
    numbers = tuple(DIGITS.findall(box))
    if numbers:
        template = NUMBER_IN_LOCAL_PART.sub(NUMBER_PLACEHOLDER, box)
        shown = DIGITS.sub(NUMBER_PLACEHOLDER, box)
    else:
        template = shown = box + NUMBER_PLACEHOLDER
        numbers = ("",)
    literal = template.replace(NUMBER_PLACEHOLDER, "")
    if len(literal) < MIN_PATTERN_STEM or not any(char.isalpha() for char in literal):
        return None, None, ()
    return template, shown, numbers
