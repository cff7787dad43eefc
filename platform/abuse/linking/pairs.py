"""Which pairs of sign-ups to compare, and the links each pair earns."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from abuse.linking.records import Link, LinkingPolicy, SignupFact
from abuse.linking.signups import SignupFeatures
from abuse.linking.weights import (
    DISPOSABLE_DOMAIN,
    DOTTED_LOCAL_PART,
    EMAIL_PATTERN,
    EMAIL_PATTERN_SHARED_DOMAIN_WEIGHT,
    EVIDENCE_USER_AGENT_CHARS,
    PLUS_ADDRESS,
    SAME_CARD,
    SAME_IP,
    SAME_IP_FAR_WEIGHT,
    SAME_SUBNET,
    SAME_USER_AGENT_BURST,
    SCRIPTED_BURST_PRIVATE_DOMAIN_WEIGHT,
    SCRIPTED_BURST_WEIGHT,
    SCRIPTED_CLIENT_WEIGHT,
    SIGNUP_BURST,
    WEIGHTS,
)
from accounts.emails import (
    is_disposable_domain,
)

# --- Pairs ---------------------------------------------------------------------------------------------------------


def _candidate_pairs(signups: list[SignupFeatures], policy: LinkingPolicy) -> set[tuple[int, int]]:
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
        if signup.template is not None:
            kind = "shared_pattern" if signup.shared_domain else "pattern"
            groups[(kind, signup.template, signup.domain)].append(index)
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


@dataclass(frozen=True)
class Burst:
    """Sign-ups that came together: `size` of them `place` (from a network, with addresses on one company's
    domain, or from a network by one scripted client) over `span`."""

    place: str
    size: int
    span: timedelta
    scripted: bool  # every one of them sent by one non-browser client


def _bursts(signups: list[SignupFeatures], policy: LinkingPolicy) -> dict[int, Burst]:
    """Mark the sign-ups that are part of a burst: at least `burst_size` from one network, with addresses on one
    company's domain, or from one network by one scripted client, within `burst_window`. Returns each burst by id;
    each sign-up's `segments` lists the bursts it is in."""
    # (where, the program's full user agent or "" for any client) -> sign-ups, in time order
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, signup in enumerate(signups):
        if signup.network is not None:
            groups[(f"from {signup.network}", "")].append(index)
            if signup.scripted_client:
                # A burst of its own, so that sign-ups of other clients from the same network (an office beside a
                # hosting range, a campus) neither hide it nor are counted in it.
                groups[(f"from {signup.network}", signup.user_agent)].append(index)
        if signup.domain is not None and not signup.shared_domain:
            groups[(f"with addresses on {signup.domain}", "")].append(index)
    bursts: dict[int, Burst] = {}
    for (place, program), members in sorted(groups.items()):
        scripted = bool(program)
        if scripted:
            place += f" by one scripted client ({_agent(program)})"
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
            bursts[burst_id] = Burst(place, position - first, times[position - 1] - times[first], scripted)
            for index in members[first:position]:
                signups[index].segments.append(burst_id)
    return bursts


def _pair_links(
    a: SignupFeatures,
    b: SignupFeatures,
    *,
    policy: LinkingPolicy,
    bursts: Mapping[int, Burst],
) -> Iterable[tuple[str, float, str]]:
    """Every signal two sign-ups share, as (signal, weight, evidence); `a` is the lower organization's."""
    gap = abs(b.created_at - a.created_at)
    within = _within(gap)
    private_domain = a.domain is not None and a.domain == b.domain and not a.shared_domain
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
    elif a.template is not None and (a.template, a.domain) == (b.template, b.domain) and a.numbers != b.numbers:
        # One template filled with other numbers. Sharing a number proves nothing (`user1-x@` and `user1-y@` are
        # two schemes' first accounts); sharing the template with another number is the naming of one scheme.
        if not a.shared_domain:
            yield (
                EMAIL_PATTERN,
                WEIGHTS[EMAIL_PATTERN],
                f"numbered addresses on {a.domain}, one template ({a.template_shown}): {a.email}, {b.email}",
            )
        elif gap <= policy.shared_domain_pattern_window:
            yield (
                EMAIL_PATTERN,
                EMAIL_PATTERN_SHARED_DOMAIN_WEIGHT,
                f"numbered addresses on {a.domain} {within}, one template ({a.template_shown}): {a.email}, {b.email}",
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
        if a.scripted_client:
            yield (
                SAME_USER_AGENT_BURST,
                SCRIPTED_CLIENT_WEIGHT,
                f"both signed up with the same user agent {within} ({_agent(a.user_agent)}), a program's, not a"
                " browser's",
            )
        else:
            yield (
                SAME_USER_AGENT_BURST,
                WEIGHTS[SAME_USER_AGENT_BURST],
                f"both signed up with the same user agent {within} ({_agent(a.user_agent)})",
            )
    if a.disposable and b.disposable and gap <= policy.burst_window:
        yield (
            DISPOSABLE_DOMAIN,
            WEIGHTS[DISPOSABLE_DOMAIN],
            f"both used disposable email domains {within} ({a.domain}, {b.domain})",
        )
    if a.segments and b.segments and gap <= policy.burst_window:
        shared = sorted(set(a.segments) & set(b.segments))
        if shared:
            # A burst of one scripted client says more than one of many; between equals the first by id (in
            # place order) is described, so the evidence never depends on the order the pairs were found in.
            burst = next((bursts[i] for i in shared if bursts[i].scripted), bursts[shared[0]])
            evidence = f"both among {burst.size} sign-ups {burst.place} {_within(burst.span)}"
            if not burst.scripted:
                weight = WEIGHTS[SIGNUP_BURST]
            elif private_domain:
                weight = SCRIPTED_BURST_PRIVATE_DOMAIN_WEIGHT
                evidence += f", both with addresses on {a.domain}, not a webmail provider"
            else:
                weight = SCRIPTED_BURST_WEIGHT
            yield SIGNUP_BURST, weight, evidence


def _agent(user_agent: str) -> str:
    """A user-agent string as evidence quotes it: long ones shortened."""
    if len(user_agent) > EVIDENCE_USER_AGENT_CHARS:
        return user_agent[: EVIDENCE_USER_AGENT_CHARS - 1] + "…"
    return user_agent


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


def _prepared(facts: Sequence[SignupFact]) -> list[SignupFeatures]:
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

    return [SignupFeatures(fact, disposable=disposable) for fact in ordered]


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
