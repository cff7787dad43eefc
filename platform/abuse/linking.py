"""Sign-up rings: which organizations were probably opened by one operator, judged from their sign-ups alone.

A model-extraction campaign is cheaper when it is split across many free accounts, each under its tier's limits.
The accounts of one operator tend to share where they came from (an address, a /24, a browser build, a burst of
sign-ups), how they were named (`user1@`, `user2@`, `name+7@`, `n.a.m.e@gmail.com`) and, once billing exists, how
they pay (one card). This module turns those coincidences into evidence:

- `signup_links` returns one `Link` per pair of organizations and signal, each with a weight (how strongly that
  signal alone says "same operator") and a sentence a reviewer can check;
- `pair_weight` combines the signals of one pair (noisy-OR: independent pieces of evidence, each of which may
  be a coincidence);
- `signup_rings` connects the pairs whose combined weight reaches `LinkingPolicy.ring_link_threshold` and keeps
  the groups whose score reaches `ring_score_threshold`.

No single weak signal reaches the link threshold, nor do the weak ones a crowd of honest people shares
(an office's /24 and its one Chrome build: 0.36); the strong ones do (one card, one mailbox, numbered addresses on
one domain, one public address within hours), and so do weak ones that pile up on the same pair (a /24, a burst,
numbered Gmail addresses). `WEIGHTS` gives each weight with its reason.

Scale: the facts of ~30 days of sign-ups (up to ~100,000) are never compared all against all. Facts are grouped
by what they share (address, network, user agent, mailbox, name stem, card, burst), each fact is paired with the
few facts before it in each of its groups (`LinkingPolicy.lookback`) inside the signal's window, and every pair
found that way is then checked against every signal. A chain through a group is enough to connect it, every
member gets its evidence, and the work is linear in the number of facts however large a group grows (one
Chrome build, one carrier's network).

Pure: plain data in, plain data out. No ORM, no clock, no randomness; the output is sorted, so the pipeline can
store it idempotently (links are unique on `low, high, signal`). The only outside state is the disposable-domain
allowlist that `accounts.emails.is_disposable_domain` reads from the settings.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

from accounts.emails import (
    DOMAIN_ALIASES,
    DOT_INSENSITIVE_DOMAINS,
    HYPHEN_TAG_DOMAINS,
    PLUS_TAG_DOMAINS,
    is_disposable_domain,
    split_email,
)

__all__ = [
    "SIGNALS",
    "WEIGHTS",
    "Link",
    "LinkingPolicy",
    "RingCandidate",
    "SignupFact",
    "pair_weight",
    "ring_score",
    "rings_from_links",
    "signup_links",
    "signup_rings",
]

# --- Signals and their weights -------------------------------------------------------------------------------------

SAME_IP = "same_ip"
SAME_SUBNET = "same_subnet"
SAME_USER_AGENT_BURST = "same_user_agent_burst"
EMAIL_PATTERN = "email_pattern"
PLUS_ADDRESS = "plus_address"
DOTTED_LOCAL_PART = "dotted_local_part"
DISPOSABLE_DOMAIN = "disposable_domain"
SIGNUP_BURST = "signup_burst"
SAME_CARD = "same_card"

SIGNALS = (
    SAME_IP,
    SAME_SUBNET,
    SAME_USER_AGENT_BURST,
    EMAIL_PATTERN,
    PLUS_ADDRESS,
    DOTTED_LOCAL_PART,
    DISPOSABLE_DOMAIN,
    SIGNUP_BURST,
    SAME_CARD,
)

# How strongly each signal alone says "one operator", 0..1. With the default link threshold of 0.5, the signals at
# 0.5 and above link a pair on their own; the others only together (noisy-OR, see `pair_weight`).
WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        # One card is one cardholder: people do not lend their card to open a stranger's account. Not 1.0: a
        # company card can pay for two teams' separate organizations.
        SAME_CARD: 0.95,
        # Two addresses that deliver to one mailbox (tags, or dots on Gmail) are one person: nobody else receives
        # that verification email. Not 1.0: a shared team inbox is one mailbox for several people.
        PLUS_ADDRESS: 0.9,
        DOTTED_LOCAL_PART: 0.9,
        # `user1@x.com`, `user2@x.com`: a script's naming. On an organization's own domain the numbered names are
        # handed out by one administrator, so the pattern is strong at any distance in time. (Strangers on
        # big providers are weaker: see EMAIL_PATTERN_SHARED_DOMAIN_WEIGHT.)
        EMAIL_PATTERN: 0.6,
        # The same public address: one device or one script when minutes apart. The weight falls linearly with
        # the time between the sign-ups, to SAME_IP_FAR_WEIGHT at `ip_window`: hours apart, an address is as
        # likely a household, an office NAT, a VPN exit or a mobile carrier's CGNAT shared by strangers.
        SAME_IP: 0.7,
        # A /24 (or an IPv6 /64) within hours: the same ISP pool, office, campus or hosting range. Many honest
        # people share one, so it only supports other evidence.
        SAME_SUBNET: 0.25,
        # Several sign-ups from one network (or one company domain) within minutes: scripted sign-ups look like
        # this, but so does a classroom or a team onboarding together.
        SIGNUP_BURST: 0.2,
        # The same user-agent string within minutes: most people run the same current Chrome, so this is barely
        # evidence; a scripted client with an unusual string adds to the rest.
        SAME_USER_AGENT_BURST: 0.15,
        # Both on throwaway domains within a burst window: wanting no traceable address is suspicious, but a
        # disposable domain is shared by every user of that service and says nothing about who.
        DISPOSABLE_DOMAIN: 0.15,
    }
)
# Numbered addresses on a provider that strangers share (gmail.com, outlook.com, a disposable service...): among
# tens of thousands of sign-ups, `alex1990@gmail.com` and `alex1987@gmail.com` meet by chance, so this needs one
# more signal (a /24, a burst) to link, and counts only within `LinkingPolicy.shared_domain_pattern_window`.
EMAIL_PATTERN_SHARED_DOMAIN_WEIGHT = 0.4
# SAME_IP's weight at the far end of `ip_window`.
SAME_IP_FAR_WEIGHT = 0.3

# Ring score: the mean weight of the links holding a group together, then each member beyond two removes this
# share of the remaining doubt (see `ring_score`).
MEMBER_DOUBT_FACTOR = 0.8

# Big providers whose users are strangers to each other: numbered names there need a window and more evidence, and
# a burst of sign-ups "from gmail.com" is just traffic.
FREE_MAIL_DOMAINS = frozenset(
    DOT_INSENSITIVE_DOMAINS
    | PLUS_TAG_DOMAINS
    | HYPHEN_TAG_DOMAINS
    | {
        "aol.com",
        "gmx.de",
        "web.de",
        "t-online.de",
        "mail.ru",
        "inbox.ru",
        "bk.ru",
        "list.ru",
        "rambler.ru",
        "qq.com",
        "163.com",
        "126.com",
        "yeah.net",
        "sina.com",
        "naver.com",
        "daum.net",
        "hanmail.net",
        "rediffmail.com",
        "tutanota.com",
        "tuta.io",
        "laposte.net",
        "orange.fr",
        "free.fr",
        "libero.it",
        "seznam.cz",
        "wp.pl",
        "o2.pl",
        "interia.pl",
        "yahoo.co.uk",
        "yahoo.fr",
        "yahoo.de",
        "yahoo.co.jp",
        "yahoo.co.in",
        "hotmail.co.uk",
        "hotmail.fr",
        "hotmail.de",
        "hotmail.it",
        "outlook.fr",
        "outlook.de",
        "live.co.uk",
        "live.fr",
    }
)

# Addresses that are not the client's own public address: a private network, the carrier-grade NAT range, or a
# proxy in front of the app that was not configured as trusted. Linking on them would link every sign-up that came
# through that proxy (every sign-up from 127.0.0.1 in a development setup). Named explicitly rather than through
# `ipaddress`' `is_private`, which in Python 3.11 also covers the documentation ranges (203.0.113.0/24, 2001:db8::/32)
# and other special-purpose blocks.
UNLINKABLE_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # RFC 1918
        "100.64.0.0/10",  # RFC 6598 carrier-grade NAT: never a client's public address
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local
        "172.16.0.0/12",  # RFC 1918
        "192.168.0.0/16",  # RFC 1918
        "224.0.0.0/3",  # multicast, reserved, broadcast
        "::/127",  # unspecified and loopback
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "ff00::/8",  # multicast
    )
)
# (netmask, network) as integers: a membership test is one AND per network.
_UNLINKABLE_V4 = tuple((int(n.netmask), int(n.network_address)) for n in UNLINKABLE_NETWORKS if n.version == 4)
_UNLINKABLE_V6 = tuple((int(n.netmask), int(n.network_address)) for n in UNLINKABLE_NETWORKS if n.version == 6)
IPV4_PREFIX = 24
IPV6_PREFIX = 64

# A stem must have this many characters (and a letter) to be a pattern: `a1@`, `a2@` or `12@`, `13@` are too
# short to be anyone's naming scheme.
MIN_PATTERN_STEM = 3
# User-agent strings are long; evidence quotes this much.
EVIDENCE_USER_AGENT_CHARS = 120

_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)$")
_STEM_SEPARATORS = "._-"


# --- Data ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignupFact:
    """What is known about one organization's sign-up (an organization with several members has several)."""

    organization_id: int
    email: str  # as typed
    ip_address: str | None  # IPv4 or IPv6, as the request reported it
    user_agent: str
    created_at: datetime  # aware
    card_fingerprint: str | None = None  # Stripe's card fingerprint, once the organization has a card


@dataclass(frozen=True)
class Link:
    """Evidence that two organizations have one operator: one signal, its weight, and what a reviewer can check."""

    low: int  # organization ids, low < high
    high: int
    signal: str  # one of SIGNALS
    weight: float  # 0..1
    evidence: str


@dataclass(frozen=True)
class RingCandidate:
    """A group of organizations that the links tie to one operator."""

    members: tuple[int, ...]  # sorted organization ids, at least two
    links: tuple[Link, ...]  # every link between two members, sorted
    score: float  # 0..100, see `ring_score`


@dataclass(frozen=True)
class LinkingPolicy:
    """Windows and thresholds. The defaults are the calibrated ones; the pipeline overrides them from
    `settings.ABUSE_LINKING_POLICY` (tests, calibration)."""

    # The same public address counts for a day: a script reuses its proxy for a while; beyond a day an address has
    # usually changed hands (dynamic residential addresses, carrier NAT).
    ip_window: timedelta = timedelta(hours=24)
    # A /24 is shared by far more people than an address, so it only counts within a working session.
    subnet_window: timedelta = timedelta(hours=6)
    # One browser build is common: only sign-ups minutes apart count, the pace of someone clicking through the form.
    user_agent_window: timedelta = timedelta(minutes=15)
    # A burst is `burst_size` sign-ups from one network (or one company's domain) within `burst_window`; two
    # disposable-domain sign-ups also count only within it. Five in half an hour is far above what one /24 or one
    # company sends us at the expected sign-up rate, and as many as a small ring needs to be worth running.
    burst_window: timedelta = timedelta(minutes=30)
    burst_size: int = 5
    # Numbered names on a shared provider (gmail.com...) count only within a day of each other: a campaign opens
    # its accounts together, while `name+year` strangers are spread over the month.
    shared_domain_pattern_window: timedelta = timedelta(hours=24)
    # Each fact is paired with at most this many earlier facts of each group it belongs to. One is enough for a
    # group to stay connected; four makes every pair of a five-account ring explicit evidence and survives a few
    # unrelated sign-ups interleaved in a shared group, while keeping the pairs linear in the number of facts.
    lookback: int = 4
    # A pair is connected when its combined weight reaches this: any strong signal alone, weak ones only together.
    ring_link_threshold: float = 0.5
    # A group is a ring when its score reaches this: a lone pair needs a combined weight of 0.6 (mid-strength
    # evidence between two accounts is routinely a coincidence), any group of three or more connected pairs does.
    ring_score_threshold: float = 60.0

    def __post_init__(self) -> None:
        windows = (
            self.ip_window,
            self.subnet_window,
            self.user_agent_window,
            self.burst_window,
            self.shared_domain_pattern_window,
        )
        if any(window <= timedelta(0) for window in windows):
            raise ValueError("linking windows must be positive")
        if self.burst_size < 2:
            raise ValueError("burst_size must be at least 2")
        if self.lookback < 1:
            raise ValueError("lookback must be at least 1")
        if not 0 < self.ring_link_threshold <= 1:
            raise ValueError("ring_link_threshold must be in (0, 1]")
        if not 0 <= self.ring_score_threshold <= 100:
            raise ValueError("ring_score_threshold must be in [0, 100]")


# --- Features of one sign-up ---------------------------------------------------------------------------------------


class _Signup:
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
        if any(number & mask == base for mask, base in _UNLINKABLE_V4):
            return None, None
        network = ipaddress.IPv4Address(number >> (32 - IPV4_PREFIX) << (32 - IPV4_PREFIX))
        return str(address), f"{network}/{IPV4_PREFIX}"
    if any(number & mask == base for mask, base in _UNLINKABLE_V6):
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
    match = _TRAILING_NUMBER.match(box)
    stem, number = (match.group(1), match.group(2)) if match else (box, "")
    stem = stem.rstrip(_STEM_SEPARATORS)  # `user.1`, `user_2` and `user3` are one scheme
    if len(stem) < MIN_PATTERN_STEM or not any(char.isalpha() for char in stem):
        return None, None
    return stem, number


# --- Pairs ---------------------------------------------------------------------------------------------------------


def _candidate_pairs(signups: list[_Signup], policy: LinkingPolicy) -> set[tuple[int, int]]:
    """Index pairs (earlier, later) worth checking: each sign-up with the last `policy.lookback` sign-ups of
    another organization in each group it belongs to, inside the group's window. `signups` is in time order."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    windows: dict[str, timedelta | None] = {
        SAME_IP: policy.ip_window,
        SAME_SUBNET: policy.subnet_window,
        SAME_USER_AGENT_BURST: policy.user_agent_window,
        DISPOSABLE_DOMAIN: policy.burst_window,
        SIGNUP_BURST: policy.burst_window,
        "mailbox": None,  # one mailbox is one person, whenever they signed up
        SAME_CARD: None,  # likewise one card
        "pattern": None,
        "shared_pattern": policy.shared_domain_pattern_window,
    }
    for index, signup in enumerate(signups):
        if signup.ip is not None:
            groups[(SAME_IP, signup.ip)].append(index)
            groups[(SAME_SUBNET, signup.network)].append(index)
        if signup.user_agent:
            groups[(SAME_USER_AGENT_BURST, signup.user_agent)].append(index)
        if signup.mailbox is not None:
            groups[("mailbox", signup.mailbox)].append(index)
        if signup.stem is not None:
            kind = "shared_pattern" if signup.shared_domain else "pattern"
            groups[(kind, signup.stem, signup.domain)].append(index)
        if signup.disposable:
            groups[(DISPOSABLE_DOMAIN,)].append(index)
        if signup.card is not None:
            groups[(SAME_CARD, signup.card)].append(index)
        for segment in signup.segments:
            groups[(SIGNUP_BURST, segment)].append(index)

    pairs: set[tuple[int, int]] = set()
    # Facts of the organization itself are passed over without counting, but only this many in all, so that a
    # group crowded with one organization's members cannot make the scan quadratic.
    max_scanned = 4 * policy.lookback
    for key, members in groups.items():
        window = windows[key[0]]
        for position in range(1, len(members)):
            later = signups[members[position]]
            found = 0
            for earlier_position in range(position - 1, max(-1, position - 1 - max_scanned), -1):
                earlier = signups[members[earlier_position]]
                if window is not None and later.created_at - earlier.created_at > window:
                    break
                if earlier.organization_id == later.organization_id:
                    continue
                pairs.add((members[earlier_position], members[position]))
                found += 1
                if found == policy.lookback:
                    break
    return pairs


def _bursts(signups: list[_Signup], policy: LinkingPolicy) -> dict[int, tuple[str, int, timedelta]]:
    """Mark the sign-ups that are part of a burst: at least `burst_size` from one network, or with addresses on one
    company's domain, within `burst_window`. Returns each burst's description (where from, how many, over how
    long) by id; each sign-up's `segments` lists the bursts it is in."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, signup in enumerate(signups):
        if signup.network is not None:
            groups[f"from {signup.network}"].append(index)
        if signup.domain is not None and not signup.shared_domain:
            groups[f"with addresses on {signup.domain}"].append(index)
    bursts: dict[int, tuple[str, int, timedelta]] = {}
    for place, members in sorted(groups.items()):
        times = [signups[index].created_at for index in members]
        # Two pointers: every window that starts at `start` and holds `burst_size` sign-ups marks them all.
        # `marked` is how far marking has got, so that each sign-up is marked once: linear in the group's size.
        in_burst = [False] * len(members)
        end = marked = 0
        for start in range(len(members)):
            end = max(end, start)
            while end < len(members) and times[end] - times[start] <= policy.burst_window:
                end += 1
            if end - start >= policy.burst_size:
                for position in range(max(start, marked), end):
                    in_burst[position] = True
                marked = end
        # A burst is a maximal run of marked sign-ups.
        position = 0
        while position < len(members):
            if not in_burst[position]:
                position += 1
                continue
            first = position
            while position < len(members) and in_burst[position]:
                position += 1
            burst_id = len(bursts)
            bursts[burst_id] = (place, position - first, times[position - 1] - times[first])
            for index in members[first:position]:
                signups[index].segments.append(burst_id)
    return bursts


def _pair_links(
    a: _Signup,
    b: _Signup,
    *,
    policy: LinkingPolicy,
    bursts: Mapping[int, tuple[str, int, timedelta]],
) -> Iterable[tuple[str, float, str]]:
    """Every signal two sign-ups share, as (signal, weight, evidence); `a` is the lower organization's."""
    gap = abs(b.created_at - a.created_at)
    within = _within(gap)
    if a.card is not None and a.card == b.card:
        yield SAME_CARD, WEIGHTS[SAME_CARD], f"both pay with the same card (Stripe fingerprint {a.card})"
    if a.mailbox is not None and a.mailbox == b.mailbox:
        if a.untagged_local != b.untagged_local:
            # Without their tags the local parts still differ: only dots can make that difference.
            yield (
                DOTTED_LOCAL_PART,
                WEIGHTS[DOTTED_LOCAL_PART],
                f"{a.email} and {b.email} are one mailbox, {a.mailbox}: the provider ignores dots",
            )
        else:
            # They differ in their tags only (or not at all: an old row or an invitation can repeat an address).
            yield (
                PLUS_ADDRESS,
                WEIGHTS[PLUS_ADDRESS],
                f"{a.email} and {b.email} are one mailbox, {a.mailbox}, with different tags",
            )
    elif a.stem is not None and (a.stem, a.domain) == (b.stem, b.domain) and a.number != b.number:
        if not a.shared_domain:
            yield EMAIL_PATTERN, WEIGHTS[EMAIL_PATTERN], f"numbered addresses on {a.domain}: {a.email}, {b.email}"
        elif gap <= policy.shared_domain_pattern_window:
            yield (
                EMAIL_PATTERN,
                EMAIL_PATTERN_SHARED_DOMAIN_WEIGHT,
                f"numbered addresses on {a.domain} {within}: {a.email}, {b.email}",
            )
    if a.ip is not None and a.ip == b.ip:
        if gap <= policy.ip_window:
            share = gap / policy.ip_window
            weight = round(WEIGHTS[SAME_IP] - (WEIGHTS[SAME_IP] - SAME_IP_FAR_WEIGHT) * share, 3)
            yield SAME_IP, weight, f"both signed up from {a.ip} {within}"
    elif a.network is not None and a.network == b.network and gap <= policy.subnet_window:
        # Sign-ups from one address are SAME_IP's; counting them here too would count one fact twice.
        yield SAME_SUBNET, WEIGHTS[SAME_SUBNET], f"both signed up from {a.network} {within} ({a.ip}, {b.ip})"
    if a.user_agent and a.user_agent == b.user_agent and gap <= policy.user_agent_window:
        agent = a.user_agent
        if len(agent) > EVIDENCE_USER_AGENT_CHARS:
            agent = agent[: EVIDENCE_USER_AGENT_CHARS - 1] + "…"
        yield (
            SAME_USER_AGENT_BURST,
            WEIGHTS[SAME_USER_AGENT_BURST],
            f"both signed up with the same user agent {within} ({agent})",
        )
    if a.disposable and b.disposable and gap <= policy.burst_window:
        yield (
            DISPOSABLE_DOMAIN,
            WEIGHTS[DISPOSABLE_DOMAIN],
            f"both used disposable email domains {within} ({a.domain}, {b.domain})",
        )
    if a.segments and b.segments and gap <= policy.burst_window:
        # The first burst they share (by id: networks before domains, each in name order) is the one described.
        shared = sorted(set(a.segments) & set(b.segments))
        if shared:
            place, size, span = bursts[shared[0]]
            yield (
                SIGNUP_BURST,
                WEIGHTS[SIGNUP_BURST],
                f"both among {size} sign-ups {place} {_within(span)}",
            )


def _within(gap: timedelta) -> str:
    """A time gap in plain words, rounded up so that "within" stays true."""
    seconds = math.ceil(gap.total_seconds())
    if seconds == 0:
        return "in the same second"
    for unit, size, limit in (("second", 1, 60), ("minute", 60, 120 * 60), ("hour", 3600, 48 * 3600)):
        if seconds < limit:
            count = math.ceil(seconds / size)
            return f"within {count} {unit}{'' if count == 1 else 's'}"
    days = math.ceil(seconds / 86400)
    return f"within {days} days"


def _prepared(facts: Sequence[SignupFact]) -> list[_Signup]:
    # Time order for the windows, and a total order on every field so that the same facts in any order give the
    # same output.
    ordered = sorted(
        facts,
        key=lambda fact: (
            fact.created_at,
            fact.organization_id,
            fact.email,
            fact.ip_address or "",
            fact.user_agent,
            fact.card_fingerprint or "",
        ),
    )
    cache: dict[str, bool] = {}

    def disposable(domain: str) -> bool:
        if domain not in cache:
            cache[domain] = is_disposable_domain(domain)
        return cache[domain]

    return [_Signup(fact, disposable=disposable) for fact in ordered]


# --- Public API ----------------------------------------------------------------------------------------------------


def signup_links(facts: Sequence[SignupFact], *, policy: LinkingPolicy) -> list[Link]:
    """Every signal that two organizations' sign-ups share, one link per pair and signal (the strongest, when
    several of their sign-ups share it), sorted by (low, high, signal). Organizations are never linked to
    themselves. Raises ValueError for a fact with a naive `created_at`."""
    signups = _prepared(facts)
    bursts = _bursts(signups, policy)
    best: dict[tuple[int, int, str], tuple[float, str]] = {}
    for i, j in _candidate_pairs(signups, policy):
        a, b = signups[i], signups[j]
        if a.organization_id > b.organization_id:
            a, b = b, a
        for signal, weight, evidence in _pair_links(a, b, policy=policy, bursts=bursts):
            key = (a.organization_id, b.organization_id, signal)
            current = best.get(key)
            # The strongest wins; between equals the first evidence in text order, so the output never depends on
            # the order in which the pairs were found.
            if current is None or (-weight, evidence) < (-current[0], current[1]):
                best[key] = (weight, evidence)
    return [
        Link(low=low, high=high, signal=signal, weight=weight, evidence=evidence)
        for (low, high, signal), (weight, evidence) in sorted(best.items())
    ]


def pair_weight(links_of_pair: Iterable[Link]) -> float:
    """The combined weight of one pair's links, 0..1: noisy-OR, `1 - prod(1 - weight)`, the chance that at least
    one of several independent signals is not a coincidence. A signal given twice counts once, at its strongest,
    so that repeated rows never inflate a pair. Rounded to 6 decimals so that thresholds compare exactly."""
    strongest: dict[str, float] = {}
    for link in links_of_pair:
        strongest[link.signal] = max(link.weight, strongest.get(link.signal, 0.0))
    doubt = 1.0
    for weight in strongest.values():
        doubt *= 1.0 - min(max(weight, 0.0), 1.0)
    return round(1.0 - doubt, 6)


def ring_score(connecting_weights: Sequence[float], n_members: int) -> float:
    """A group's score, 0..100: `100 * (1 - (1 - mean) * 0.8 ** (n_members - 2))`, where `mean` is the mean combined
    weight of the pairs that connect it. A pair scores its mean weight; every further member removes a fifth of the
    remaining doubt, because more accounts tied by the same kind of evidence are less likely a coincidence. Five
    members linked at 0.55 score 77; two linked by one card, 95. Rounded to one decimal."""
    if n_members < 2 or not connecting_weights:
        raise ValueError("a ring has at least two members and one connecting pair")
    mean = sum(connecting_weights) / len(connecting_weights)
    return round(100.0 * (1.0 - (1.0 - mean) * MEMBER_DOUBT_FACTOR ** (n_members - 2)), 1)


def rings_from_links(links: Iterable[Link], *, policy: LinkingPolicy) -> list[RingCandidate]:
    """The rings that `links` (as `signup_links` returns them) form: the connected groups of the pairs whose
    combined weight reaches `ring_link_threshold`, kept when their score reaches `ring_score_threshold`. Sorted by
    score, highest first, then by members."""
    by_pair: dict[tuple[int, int], list[Link]] = defaultdict(list)
    for link in links:
        by_pair[(link.low, link.high)].append(link)
    weights = {pair: pair_weight(pair_links) for pair, pair_links in by_pair.items()}

    parent: dict[int, int] = {}

    def root(node: int) -> int:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]  # path halving keeps the trees flat
            node = parent[node]
        return node

    connecting = sorted(pair for pair, weight in weights.items() if weight >= policy.ring_link_threshold)
    for low, high in connecting:
        low_root, high_root = root(low), root(high)
        if low_root != high_root:
            parent[max(low_root, high_root)] = min(low_root, high_root)

    groups: dict[int, list[int]] = defaultdict(list)
    for node in sorted(parent):
        groups[root(node)].append(node)
    connecting_by_group: dict[int, list[float]] = defaultdict(list)
    for pair in connecting:
        connecting_by_group[root(pair[0])].append(weights[pair])
    links_by_group: dict[int, list[Link]] = defaultdict(list)
    for (low, high), pair_links in by_pair.items():
        if low in parent and high in parent and root(low) == root(high):
            links_by_group[root(low)].extend(pair_links)

    rings = []
    for group_root, members in groups.items():
        score = ring_score(connecting_by_group[group_root], len(members))
        if score < policy.ring_score_threshold:
            continue
        group_links = sorted(links_by_group[group_root], key=lambda link: (link.low, link.high, link.signal))
        rings.append(RingCandidate(members=tuple(members), links=tuple(group_links), score=score))
    return sorted(rings, key=lambda ring: (-ring.score, ring.members))


def signup_rings(facts: Sequence[SignupFact], *, policy: LinkingPolicy) -> list[RingCandidate]:
    """The sign-up rings among `facts`: `rings_from_links(signup_links(facts))`. A caller that also stores the
    links can compute them once and call `rings_from_links` itself."""
    return rings_from_links(signup_links(facts, policy=policy), policy=policy)
