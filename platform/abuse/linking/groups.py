"""From links to rings: a pair's combined weight, connected groups and their scores."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from abuse.linking.pairs import signup_links
from abuse.linking.records import CERTAIN, LIKELY, Link, LinkingPolicy, RingCandidate, SignupFact
from abuse.linking.weights import MEMBER_DOUBT_FACTOR


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
    """The rings that `links` (as `signup_links` returns them) form. Certain rings: the connected groups of the
    pairs whose combined weight reaches `ring_link_threshold`, kept when their score reaches
    `ring_score_threshold`. Likely rings: the same among the other organizations, from the pairs that reach
    `likely_link_threshold` (a weakly linked account is never pulled into a certain ring, nor is a certain ring
    diluted into a likely one). Sorted by score, highest first, then by members."""
    by_pair: dict[tuple[int, int], list[Link]] = defaultdict(list)
    for link in links:
        by_pair[(link.low, link.high)].append(link)
    weights = {pair: pair_weight(pair_links) for pair, pair_links in by_pair.items()}

    rings = _groups(by_pair, weights, threshold=policy.ring_link_threshold, policy=policy, level=CERTAIN)
    if policy.likely_link_threshold < policy.ring_link_threshold:
        taken = {member for ring in rings for member in ring.members}
        rest = {pair: weight for pair, weight in weights.items() if pair[0] not in taken and pair[1] not in taken}
        rings += _groups(by_pair, rest, threshold=policy.likely_link_threshold, policy=policy, level=LIKELY)
    return sorted(rings, key=lambda ring: (-ring.score, ring.members))


def _groups(
    by_pair: dict[tuple[int, int], list[Link]],
    weights: dict[tuple[int, int], float],
    *,
    threshold: float,
    policy: LinkingPolicy,
    level: str,
) -> list[RingCandidate]:
    """The connected groups of the pairs in `weights` at `threshold` or above whose score reaches
    `ring_score_threshold`, each with every link between two of its members."""
    parent: dict[int, int] = {}

    def root(node: int) -> int:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]  # path halving keeps the trees flat
            node = parent[node]
        return node

    connecting = sorted(pair for pair, weight in weights.items() if weight >= threshold)
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
        rings.append(RingCandidate(members=tuple(members), links=tuple(group_links), score=score, level=level))
    return rings


def signup_rings(facts: Sequence[SignupFact], *, policy: LinkingPolicy) -> list[RingCandidate]:
    """The sign-up rings among `facts`, certain and likely: `rings_from_links(signup_links(facts))`. A caller that
    also stores the links can compute them once and call `rings_from_links` itself."""
    return rings_from_links(signup_links(facts, policy=policy), policy=policy)
