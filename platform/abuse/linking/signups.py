"""The features of one sign-up the signals compare: its network, mailbox and naming pattern."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable

from abuse.linking.records import SignupFact
from abuse.linking.weights import (
    FREE_MAIL_DOMAINS,
    IPV4_PREFIX,
    IPV6_PREFIX,
    MIN_PATTERN_STEM,
    STEM_SEPARATORS,
    TRAILING_NUMBER,
    UNLINKABLE_V4,
    UNLINKABLE_V6,
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
        "number",
        "organization_id",
        "segments",
        "shared_domain",
        "stem",
        "untagged_local",
        "user_agent",
    )

    def __init__(self, fact: SignupFact, *, disposable: Callable[[str], bool]) -> None:
        if fact.created_at.tzinfo is None or fact.created_at.utcoffset() is None:
            raise ValueError(f"sign-up of organization {fact.organization_id} has a naive created_at")
        self.organization_id = fact.organization_id
        self.created_at = fact.created_at
        self.user_agent = (fact.user_agent or "").strip()
        self.card = (fact.card_fingerprint or "").strip() or None
        self.ip, self.network = _linkable_address(fact.ip_address)
        self.email = fact.email.strip()
        self.domain = self.mailbox = self.untagged_local = self.stem = self.number = None
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
            self.stem, self.number = _pattern_of(box)
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


def _pattern_of(box: str) -> tuple[str | None, str | None]:
    """The stem and trailing number of a mailbox's local part: `user17` -> ("user", "17"), `john` -> ("john", "");
    (None, None) when the stem is too short or has no letter to be a naming scheme."""
    match = TRAILING_NUMBER.match(box)
    stem, number = (match.group(1), match.group(2)) if match else (box, "")
    stem = stem.rstrip(STEM_SEPARATORS)  # `user.1`, `user_2` and `user3` are one scheme
    if len(stem) < MIN_PATTERN_STEM or not any(char.isalpha() for char in stem):
        return None, None
    return stem, number
