"""The sign-up ring job: store the links between organizations and keep the rings they form up to date.

Idempotent and safe to run concurrently: runs serialize on a transaction-scoped advisory lock, links are
upserted on (low, high, signal), and ring members are only ever added (a ring is evidence: an account that ages
out of the look-back window stays in its ring). Rings that become connected are merged into the oldest one.

A likely ring (`abuse.linking`: links of 0.45 to 0.5) is stored like a certain one, with `level` saying which, so
that its merged traffic is scored from the first run that sees it; it becomes certain when the evidence does, and
never goes back (PostgreSQL keeps the level; the risk job reads it from there)."""

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from abuse.linking import Link, LinkingPolicy, RingCandidate, pair_weight, rings_from_links, signup_links
from abuse.models import AuditAction, Ring, RingLevel, RingMember, RingStatus, RiskState, SignupLink
from abuse.selectors import signup_facts
from abuse.services import Actor, audit_record

# First key of the two-int advisory lock of the abuse jobs ("ABUS"); the second names the job.
ABUSE_LOCK_CLASS = 0x41425553
RINGS_LOCK = 1


def linking_policy() -> LinkingPolicy:
    return LinkingPolicy(**settings.ABUSE_LINKING_POLICY)


# Pairs below this combined weight are not stored: mostly "same browser within minutes", which by itself says
# little, and which would be most of the rows (about three per sign-up).
STORED_PAIR_WEIGHT = 0.3


def _worth_keeping(links: list[Link]) -> list[Link]:
    by_pair: dict[tuple[int, int], list[Link]] = defaultdict(list)
    for link in links:
        by_pair[(link.low, link.high)].append(link)
    return [link for pair_links in by_pair.values() if pair_weight(pair_links) >= STORED_PAIR_WEIGHT
            for link in pair_links]  # fmt: skip


def _store_links(links: list[Link], *, now: datetime) -> None:
    rows = [
        SignupLink(
            low_id=link.low, high_id=link.high, signal=link.signal, weight=link.weight, evidence=link.evidence,
            first_seen_at=now, last_seen_at=now,
        )
        for link in links
    ]  # fmt: skip
    SignupLink.objects.bulk_create(
        rows,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["low", "high", "signal"],
        update_fields=["weight", "evidence", "last_seen_at"],
    )


def _add_members(ring: Ring, organization_ids: Iterable[int], *, now: datetime) -> None:
    organization_ids = list(organization_ids)
    RingMember.objects.bulk_create(
        [RingMember(ring=ring, organization_id=org, joined_at=now) for org in organization_ids], ignore_conflicts=True
    )
    for org in organization_ids:
        RiskState.objects.update_or_create(organization_id=org, defaults={"ring": ring})


def _ring_for(candidate: RingCandidate, *, now: datetime) -> Ring | None:
    """The ring that holds the candidate's members: an existing one (merging any others it now connects), or a
    new one. None when staff dismissed a ring that already holds every member. The ring is certain when the
    candidate is, or when any ring it absorbs was."""
    members = set(candidate.members)
    existing = list(
        Ring.objects.filter(memberships__organization_id__in=members).exclude(status=RingStatus.MERGED)
        .distinct().order_by("created_at", "pk")
    )  # fmt: skip
    active = [ring for ring in existing if ring.status == RingStatus.ACTIVE]
    for dismissed in (ring for ring in existing if ring.status == RingStatus.DISMISSED):
        if dismissed.level == RingLevel.LIKELY and candidate.level == RingLevel.CERTAIN:
            continue  # staff judged the weaker evidence; the stronger one is news to them
        if members <= set(dismissed.memberships.values_list("organization_id", flat=True)):
            return None
    if not active:
        ring = Ring.objects.create(score=candidate.score, level=candidate.level, created_at=now, updated_at=now)
        strength = "" if candidate.level == RingLevel.CERTAIN else ", likely one operator (not yet proven)"
        audit_record(
            actor=Actor.jobs(), action=AuditAction.RING_FOUND, ring_id=ring.pk,
            reason=f"{len(members)} organizations linked by their sign-ups{strength}.",
            details={
                "members": sorted(members), "level": candidate.level,
                "evidence": [link.evidence for link in candidate.links][:50],
            },
        )  # fmt: skip
        return ring
    ring, others = active[0], active[1:]
    for other in others:
        # The members of a ring merged into another follow it.
        moved = list(other.memberships.values_list("organization_id", flat=True))
        _add_members(ring, moved, now=now)
        Ring.objects.filter(pk=other.pk).update(status=RingStatus.MERGED, merged_into=ring, updated_at=now)
        audit_record(
            actor=Actor.jobs(), action=AuditAction.RING_FOUND, ring_id=ring.pk,
            reason=f"Ring {other.pk} merged into ring {ring.pk}: new sign-up evidence connects them.",
            details={"merged_ring": other.pk, "members": sorted(moved)},
        )  # fmt: skip
    certain = candidate.level == RingLevel.CERTAIN or any(other.level == RingLevel.CERTAIN for other in active)
    if certain and ring.level != RingLevel.CERTAIN:
        audit_record(
            actor=Actor.jobs(), action=AuditAction.RING_FOUND, ring_id=ring.pk,
            reason=f"Ring {ring.pk} is now certain: stronger sign-up evidence links {len(members)} of its members.",
            details={"members": sorted(members), "level": RingLevel.CERTAIN},
        )  # fmt: skip
        ring.level = RingLevel.CERTAIN
    Ring.objects.filter(pk=ring.pk).update(score=max(ring.score, candidate.score), level=ring.level, updated_at=now)
    return ring


@transaction.atomic
def signup_rings_refresh(*, now: datetime | None = None) -> list[Ring]:
    """Link the sign-ups of the look-back window and make every connected group above the thresholds a ring,
    certain or likely (`Ring.level`)."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [ABUSE_LOCK_CLASS, RINGS_LOCK])
    facts = signup_facts(since=now - settings.ABUSE_RING_LOOKBACK)
    policy = linking_policy()
    links = signup_links(facts, policy=policy)
    _store_links(_worth_keeping(links), now=now)
    rings: list[Ring] = []
    for candidate in rings_from_links(links, policy=policy):
        ring = _ring_for(candidate, now=now)
        if ring is None:
            continue
        _add_members(ring, candidate.members, now=now)
        rings.append(ring)
    return sorted({ring.pk: ring for ring in rings}.values(), key=lambda ring: ring.pk)
