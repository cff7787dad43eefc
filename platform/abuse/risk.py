"""The extraction-risk job: score every organization with new traffic, and every ring with a member that has, over
a sliding window of the query log; store the scores over time; throttle or freeze above the thresholds. A ring,
certain or likely (`Ring.level`), is scored as one window of its members' merged traffic, and each member stands
at the worse of its own score and its ring's.

Safe to run twice or concurrently: a run that finds another one in progress (a transaction-scoped advisory lock)
returns at once, since the running one covers the same traffic; assessments are upserted per time bucket; every
action is conditional (a frozen organization is not frozen again, nor emailed twice)."""

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from abuse.extraction import RiskResult, extraction_risk
from abuse.models import Ring, RingLevel, RingStatus, RiskAssessment, RiskLevel, RiskState
from abuse.profiles import model_profiles_ensure
from abuse.rings import ABUSE_LOCK_CLASS
from abuse.selectors import (
    ModelReference,
    inputs_answered_since,
    model_references,
    models_queried,
    organization_tiers,
    organizations_with_new_traffic,
    query_window,
    tier_normal_volume,
    window_volumes,
)
from abuse.services import JOBS_ACTOR, Actor, organization_clear_throttle, organization_freeze, organization_throttle
from accounts.models import Organization

logger = logging.getLogger(__name__)

RISK_LOCK = 2

# A likely ring's merged score acts on the members that carry its traffic: those that sent at least this share of
# an even split of its merged inputs (half of 1/n). A ring that spreads its campaign over its accounts, the case its
# merged window exists for, is all carriers; a quiet account only likely linked to one caught extracting on its own
# has not been shown to take part (that one is frozen on its own score), and is judged on its own traffic until it
# carries a share. A certain ring acts on every member: the sign-ups prove them one operator's.
LIKELY_RING_CARRIER_SHARE = 0.5


def risk_level(score: int) -> str:
    if score >= settings.ABUSE_FREEZE_SCORE:
        return RiskLevel.FREEZE
    if score >= settings.ABUSE_THROTTLE_SCORE:
        return RiskLevel.THROTTLE
    return RiskLevel.NORMAL


def _bucket(now: datetime) -> datetime:
    seconds = int(settings.ABUSE_HISTORY_BUCKET.total_seconds())
    return datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, tz=UTC)


@dataclass(frozen=True)
class _Subject:
    organization_ids: tuple[int, ...]
    starts: dict[int, datetime]
    normal_volume: float


def _assess(subject: _Subject, *, references: dict[str, ModelReference], now: datetime) -> RiskResult:
    """The subject's risk: its window scored once per model it queried (inputs of different models are not
    comparable), the highest score standing, and saying which model when the platform serves several."""
    queried = [references[slug] for slug in models_queried(starts=subject.starts, end=now) if slug in references]
    if not queried:  # no answered prediction (yet): errors and volume alone, read through any model
        queried = list(references.values())[:1]
    best: RiskResult | None = None
    for reference in queried:
        window = query_window(starts=subject.starts, end=now, reference=reference)
        result = extraction_risk(
            window,
            reference.profile,
            normal_volume=subject.normal_volume,
            throttle_score=settings.ABUSE_THROTTLE_SCORE,
            freeze_score=settings.ABUSE_FREEZE_SCORE,
        )
        if len(references) > 1:
            result = replace(result, explanation=f"On model '{reference.slug}': {result.explanation}")
        if best is None or result.score > best.score:
            best = result
    return best


def _store(result: RiskResult, *, organization_id: int | None, ring: Ring | None, start: datetime, now: datetime):
    return RiskAssessment.objects.update_or_create(
        organization_id=organization_id,
        ring=ring,
        bucket=_bucket(now),
        defaults={
            "computed_at": now,
            "window_start": start,
            "window_end": now,
            "queries": result.queries,
            "score": result.score,
            "level": risk_level(result.score),
            "components": result.to_dict()["components"],
            "explanation": result.explanation,
        },
    )[0]


def _top_reasons(result: RiskResult) -> list[str]:
    ranked = sorted((c for c in result.components if c.points > 0), key=lambda c: -c.points)
    return [c.detail for c in ranked[:3]]


def _window_starts(organization_ids: list[int], *, now: datetime) -> dict[int, datetime]:
    """Each organization's window starts at the later of the sliding window and the last staff review."""
    earliest = now - settings.ABUSE_RISK_WINDOW
    cleared = dict(
        RiskState.objects.filter(organization_id__in=organization_ids, cleared_at__isnull=False)
        .values_list("organization_id", "cleared_at")
    )  # fmt: skip
    return {org: max(earliest, cleared.get(org, earliest)) for org in organization_ids}


def _normal_volume(organization_ids: list[int], tiers: dict[int, tuple[str, int]]) -> float:
    """What ONE honest organization sends in a window: the scorer compares a ring's merged volume with it, knowing
    how many accounts the window merges. For a ring of mixed tiers, the mean of its members' tiers."""
    volumes: dict[str, float] = {}
    for org in organization_ids:
        code, per_day = tiers[org]
        if code not in volumes:
            volumes[code] = tier_normal_volume(tier_code=code, requests_per_day=per_day)
    mean = sum(volumes[tiers[org][0]] for org in organization_ids) / len(organization_ids)
    # The window is a multiple (or a fraction) of a day.
    return mean * settings.ABUSE_RISK_WINDOW.total_seconds() / 86400


def _enforce(organization: Organization, *, score: int, result: RiskResult, ring: Ring | None, now: datetime) -> None:
    reason = result.explanation  # "Extraction risk N/100 (level). Reasons, strongest first: ..."
    if ring is not None:
        likely = ", likely one operator's," if ring.level == RingLevel.LIKELY else ","
        reason = f"Signed up as part of ring {ring.pk}{likely} whose traffic is scored together. {reason}"
    details = {"score": score, "queries": result.queries}
    if score >= settings.ABUSE_FREEZE_SCORE:
        organization_freeze(organization=organization, actor=Actor.jobs(), reason=reason, ring=ring, details=details)
    elif score >= settings.ABUSE_THROTTLE_SCORE:
        persisted = _inputs_since_jobs_throttle(organization, now=now)
        if persisted >= settings.ABUSE_PERSISTENCE_INPUTS:
            reason = (
                f"Throttled for extraction risk on {organization.throttle_set_at:%Y-%m-%d %H:%M} UTC and kept on:"
                f" {persisted:,} more inputs since, still at {score}/100. {reason}"
            )
            details = {**details, "inputs_since_throttle": persisted}
            organization_freeze(
                organization=organization, actor=Actor.jobs(), reason=reason, ring=ring, details=details
            )
        else:
            organization_throttle(organization=organization, actor=Actor.jobs(), reason=reason, at=now)
    elif score < settings.ABUSE_CLEAR_THROTTLE_SCORE and organization.throttle_set_by == JOBS_ACTOR:
        # Only a throttle the jobs set is lifted by the jobs; a reviewer's stays until a reviewer clears it.
        organization_clear_throttle(
            organization=organization, actor=Actor.jobs(), reason=f"Extraction risk fell to {score}/100."
        )


def _inputs_since_jobs_throttle(organization: Organization, *, now: datetime) -> int:
    """Inputs answered from the run that throttled the organization up to `now` (0 when the jobs did not throttle
    it: a reviewer's throttle is a reviewer's decision to watch, not a warning the jobs escalate)."""
    if (
        organization.throttle_factor >= 1
        or organization.throttle_set_by != JOBS_ACTOR
        or not organization.throttle_set_at
    ):
        return 0
    return inputs_answered_since(organization_id=organization.pk, since=organization.throttle_set_at, until=now)


def extraction_risk_assess_all(*, now: datetime | None = None) -> list[RiskAssessment]:
    """One run of the job; returns the assessments it stored (organizations first, then rings)."""
    now = now or timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [ABUSE_LOCK_CLASS, RISK_LOCK])
            if not cursor.fetchone()[0]:
                logger.info("extraction risk: another run is in progress; this one stops")
                return []
        return _assess_all(now=now)


def _assess_all(*, now: datetime) -> list[RiskAssessment]:
    model_profiles_ensure()  # a model activated since the last run gets its reference profile now, once
    references = model_references()
    if not references:
        return []  # nothing is served: there is no traffic to score
    active = organizations_with_new_traffic(since=now - settings.ABUSE_RISK_WINDOW, until=now)
    rings = list(
        Ring.objects.filter(status=RingStatus.ACTIVE, memberships__organization_id__in=active).distinct()
        .prefetch_related("memberships")
    )  # fmt: skip
    ring_members = {ring.pk: sorted(m.organization_id for m in ring.memberships.all()) for ring in rings}
    everyone = sorted(set(active).union(*ring_members.values()))
    tiers = organization_tiers(organization_ids=everyone)
    starts = _window_starts(everyone, now=now)
    stored: list[RiskAssessment] = []

    own: dict[int, tuple[int, RiskResult]] = {}
    for org in active:
        if org not in tiers:
            continue  # deleted since its traffic was logged
        subject = _Subject((org,), {org: starts[org]}, _normal_volume([org], tiers))
        result = _assess(subject, references=references, now=now)
        own[org] = (result.score, result)
        stored.append(_store(result, organization_id=org, ring=None, start=starts[org], now=now))

    by_ring: dict[int, tuple[int, RiskResult, Ring]] = {}
    carriers: dict[int, set[int]] = {}  # likely rings only: the members their merged score acts on
    for ring in rings:
        members = [org for org in ring_members[ring.pk] if org in tiers]
        subject = _Subject(tuple(members), {org: starts[org] for org in members}, _normal_volume(members, tiers))
        result = _assess(subject, references=references, now=now)
        by_ring[ring.pk] = (result.score, result, ring)
        stored.append(_store(result, organization_id=None, ring=ring, start=min(subject.starts.values()), now=now))
        if ring.level != RingLevel.CERTAIN:
            carriers[ring.pk] = _carriers(subject.starts, now=now)

    # A certain ring stands at the worse of its merged score and its worst member's own: one member caught
    # extracting freezes the accounts signed up with it. A likely ring stands at its merged score only: it is
    # scored as one actor before it is proven one, so that a ring spread thin over its accounts is frozen as a ring
    # early, but the sign-ups do not prove that one member's own conduct is the others' (see
    # LIKELY_RING_CARRIER_SHARE).
    for ring_id, (ring_score, _, ring) in list(by_ring.items()):
        if ring.level != RingLevel.CERTAIN:
            continue
        worst = max((own[org] for org in ring_members[ring_id] if org in own), key=lambda pair: pair[0], default=None)
        if worst is not None and worst[0] > ring_score:
            by_ring[ring_id] = (worst[0], worst[1], ring)

    ring_of = {org: ring_id for ring_id, members in ring_members.items() for org in members}
    for organization in Organization.objects.filter(pk__in=[org for org in everyone if org in tiers]):
        org = organization.pk
        own_score, own_result = own.get(org, (0, None))
        ring_score, ring_result, ring = by_ring.get(ring_of.get(org), (0, None, None))
        if ring is not None and org not in carriers.get(ring.pk, {org}):
            ring_score, ring_result = 0, None  # a likely ring's member that does not carry its traffic
            if own_result is None:
                continue  # nothing new of its own either
        # The organization stands at the worse of its own score and its ring's (sybil extraction).
        if own_result is not None and own_score >= ring_score:
            score, result, via = own_score, own_result, None
        else:
            score, result, via = ring_score, ring_result, ring
        _update_state(org, score=score, result=result, ring=ring, assessed=own_result is not None, now=now)
        if via is not None and starts[org] > now - settings.ABUSE_RISK_WINDOW:
            # Staff reviewed this member within the window: its ring's traffic alone does not act on it again.
            continue
        with transaction.atomic():
            _enforce(organization, score=score, result=result, ring=via, now=now)
    return stored


def _carriers(starts: dict[int, datetime], *, now: datetime) -> set[int]:
    """The members of a likely ring that carry its traffic (LIKELY_RING_CARRIER_SHARE)."""
    volumes = window_volumes(starts=starts, end=now)
    total = sum(volumes.values())
    return {org for org, volume in volumes.items() if volume * len(volumes) >= LIKELY_RING_CARRIER_SHARE * total}


def _update_state(org: int, *, score: int, result: RiskResult, ring: Ring | None, assessed: bool, now: datetime):
    state, _ = RiskState.objects.select_for_update().get_or_create(organization_id=org)
    state.previous_score = state.score
    state.score = score
    state.level = risk_level(score)
    state.top_reasons = _top_reasons(result)
    state.explanation = result.explanation
    if ring is not None:
        state.ring = ring
    if assessed:
        state.assessed_at = now
    state.save()
