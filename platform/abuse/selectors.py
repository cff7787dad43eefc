"""Reads for the abuse jobs: sign-up facts, query windows from the query log, the tier's normal volume."""

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db.models import Max, Q, Sum
from django.utils import timezone

from abuse.extraction import InputProfile, QueryWindow
from abuse.linking import SignupFact
from abuse.models import Appeal, AuditAction, AuditEntry, RiskState
from accounts.models import Organization, SignupRecord
from apikeys.models import ApiKey, KeyState
from billing.metering.models import UsageDay
from billing.payments.models import BillingAccount
from serving.input_schema import InputSchema
from serving.predictions.models import QueryLog
from serving.registry.models import ArtifactFormat, ModelVersion


def signup_facts(*, since: datetime) -> list[SignupFact]:
    """Every sign-up since `since`, plus every organization whose card another organization also uses (a shared
    card links accounts however old they are)."""
    cards = dict(
        BillingAccount.objects.exclude(card_fingerprint="").filter(card_fingerprint__isnull=False)
        .values_list("organization_id", "card_fingerprint")
    )  # fmt: skip
    seen: dict[str, int] = {}
    for fingerprint in cards.values():
        seen[fingerprint] = seen.get(fingerprint, 0) + 1
    shared_card_orgs = [org for org, fingerprint in cards.items() if seen[fingerprint] > 1]
    records = SignupRecord.objects.filter(Q(created_at__gte=since) | Q(organization_id__in=shared_card_orgs))
    return [
        SignupFact(
            organization_id=record.organization_id,
            email=record.email,
            ip_address=record.ip_address,
            user_agent=record.user_agent,
            created_at=record.created_at,
            card_fingerprint=cards.get(record.organization_id),
        )
        for record in records.order_by("created_at", "pk").iterator(chunk_size=2000)
    ]


# A record's time is its request's; it reaches PostgreSQL with the next flush (seconds later, minutes if Redis was
# down). Calls made up to this long before an organization's last assessment may have arrived after it.
LOG_ARRIVAL_LAG = timedelta(minutes=2)


def organizations_with_new_traffic(*, since: datetime, until: datetime) -> list[int]:
    """Organizations that called the API between `since` and `until` and that may have calls their last
    assessment did not see."""
    recent = (
        QueryLog.objects.filter(created_at__gte=since, created_at__lte=until).values("organization_id")
        .annotate(last=Max("created_at"))
        .order_by()
    )  # fmt: skip
    assessed = dict(RiskState.objects.exclude(assessed_at=None).values_list("organization_id", "assessed_at"))
    return sorted(
        row["organization_id"]
        for row in recent
        if row["organization_id"] not in assessed or row["last"] > assessed[row["organization_id"]] - LOG_ARRIVAL_LAG
    )


@dataclass(frozen=True)
class ModelReference:
    """What the scorer knows of one served model: its input schema (to read the logged inputs), its class count and
    the reference profile of its natural inputs (None: the distribution signals are off for it)."""

    slug: str
    schema: InputSchema
    n_classes: int
    profile: InputProfile | None


def _stored_profile(version: ModelVersion) -> InputProfile | None:
    if not version.input_profile:
        return None
    try:
        return InputProfile.from_dict(version.input_profile)
    except ValueError:  # an older format, or a profile that could not be refitted: the scorer does without
        return None


def model_references() -> dict[str, ModelReference]:
    """Every model with an active version, by slug. The profile is the active full version's (else the defended
    one's): the natural inputs are the model's, whichever variant answered them."""
    references: dict[str, ModelReference] = {}
    active = ModelVersion.objects.filter(is_active=True, artifact_format=ArtifactFormat.ONNX).select_related("model")
    for version in active.order_by("model__slug", "variant"):  # "defended" < "full": the full one's profile wins
        model = version.model
        profile = _stored_profile(version)
        known = references.get(model.slug)
        references[model.slug] = ModelReference(
            slug=model.slug,
            schema=InputSchema.from_dict(model.input_schema),
            n_classes=len(model.class_labels),
            profile=profile or (known.profile if known else None),
        )
    return references


def _calls(starts: dict[int, datetime], end: datetime):
    scope = Q()
    for organization_id, start in starts.items():
        scope |= Q(organization_id=organization_id, created_at__gte=start)
    return QueryLog.objects.filter(scope, created_at__lte=end)


def models_queried(*, starts: dict[int, datetime], end: datetime) -> list[str]:
    """The models the organizations' windows hold answered predictions of, by slug."""
    queried = _calls(starts, end).filter(endpoint="predict", status=200).values_list("model_slug", flat=True)
    return sorted(set(queried.distinct().order_by()))


def window_volumes(*, starts: dict[int, datetime], end: datetime) -> dict[int, int]:
    """Each organization's answered inputs in its window (`starts`: organization id -> its window's start), every
    model's; an organization that sent none is 0. How a ring's merged volume splits between its members."""
    rows = (
        _calls(starts, end).filter(endpoint="predict", status=200).values("organization_id")
        .annotate(total=Sum("batch_size")).order_by()
    )  # fmt: skip
    volumes = dict.fromkeys(starts, 0)
    volumes.update({row["organization_id"]: int(row["total"] or 0) for row in rows})
    return volumes


def query_window(*, starts: dict[int, datetime], end: datetime, reference: ModelReference) -> QueryWindow:
    """The calls of the organizations (`starts`: organization id -> its window's start) up to `end`, merged in time
    order: the inputs of the latest ABUSE_RISK_MAX_INPUTS inputs' successful predictions of one model, and the
    errors (throttling excepted). Volume counts every model's inputs (it is the account's); inputs already pruned
    by the retention job are skipped."""
    calls = _calls(starts, end)
    schema = reference.schema
    predictions = list(
        calls.filter(endpoint="predict", status=200, inputs__isnull=False, model_slug=reference.slug)
        .order_by("-created_at", "-pk")
        .values_list("created_at", "inputs", "labels", "confidences")[: settings.ABUSE_RISK_MAX_INPUTS]
    )
    predictions.reverse()
    rows: list[np.ndarray] = []
    labels: list[str] = []
    confidences: list[float] = []
    times: list[float] = []
    for created_at, raw, call_labels, call_confidences in predictions:
        batch = schema.decode_rows(bytes(raw))
        count = min(len(batch), len(call_labels), len(call_confidences))
        rows.append(batch[:count])
        labels.extend(call_labels[:count])
        confidences.extend(call_confidences[:count])
        times.extend([created_at.timestamp()] * count)
    inputs = np.concatenate(rows) if rows else np.zeros((0, schema.n_features), dtype=schema.code_dtype)
    keep = settings.ABUSE_RISK_MAX_INPUTS  # the latest calls were taken whole; trim the oldest inputs
    errors = list(
        calls.filter(status__gte=400).exclude(status=429).order_by("created_at", "pk")
        .values_list("created_at", "endpoint", "error_code")[:1000]
    )  # fmt: skip
    # Volume counts every input of the window, including those older than the latest ones read above.
    total = calls.filter(endpoint="predict", status=200).aggregate(total=Sum("batch_size"))["total"] or 0
    return QueryWindow(
        total_inputs=total,
        inputs=inputs[-keep:],
        labels=np.asarray(labels[-keep:], dtype=str),
        confidences=np.asarray(confidences[-keep:], dtype=np.float64),
        times=np.asarray(times[-keep:], dtype=np.float64),
        error_times=np.asarray([when.timestamp() for when, _, _ in errors], dtype=np.float64),
        error_kinds=[f"{endpoint}:{code}" for _, endpoint, code in errors],
        n_classes=reference.n_classes,
        accounts=len(starts),
    )


def inputs_answered_since(*, organization_id: int, since: datetime, until: datetime) -> int:
    """How many inputs the organization's keys were answered from `since` to `until` (its query log)."""
    answered = QueryLog.objects.filter(
        organization_id=organization_id, created_at__gte=since, created_at__lte=until, endpoint="predict", status=200
    ).aggregate(total=Sum("batch_size"))["total"]
    return int(answered or 0)


def tier_normal_volume(*, tier_code: str, requests_per_day: int, days: int = 7) -> float:
    """What an honest organization of the tier sends in a day: the median daily usage of the tier's organizations
    over the last `days` days, never below ABUSE_NORMAL_VOLUME_FLOOR of the tier's daily limit (a new platform,
    or a tier of idle accounts, must not make every active customer look abnormal)."""
    since = timezone.now().date() - timedelta(days=days)
    daily = list(UsageDay.objects.filter(tier_code=tier_code, day__gte=since).values_list("units", flat=True))
    floor = requests_per_day * settings.ABUSE_NORMAL_VOLUME_FLOOR
    return max(float(statistics.median(daily)) if daily else 0.0, floor)


def organization_tiers(*, organization_ids: Iterable[int]) -> dict[int, tuple[str, int]]:
    return {
        org.pk: (org.tier.code, org.tier.requests_per_day)
        for org in Organization.objects.filter(pk__in=list(organization_ids)).select_related("tier")
    }


@dataclass(frozen=True)
class Standing:
    """What a member sees of their organization's standing: the decisions taken and the reasons given with them,
    not the live scores (a running score would show an attacker how close to the line each query brings them)."""

    frozen_keys: int
    throttle_factor: float
    suspended: bool
    strikes: int
    decisions: list[AuditEntry]
    appeals: list[Appeal]

    @property
    def restricted(self) -> bool:
        return bool(self.frozen_keys or self.throttle_factor < 1 or self.suspended)


def organization_strikes(*, organization_id: int) -> int:
    """Warnings on record: the audit log is the count, no counter is kept beside it."""
    return AuditEntry.objects.filter(organization_id=organization_id, action=AuditAction.WARN).count()


_MEMBER_VISIBLE_ACTIONS = [AuditAction.WARN, AuditAction.THROTTLE, AuditAction.FREEZE, AuditAction.SUSPEND]


def organization_standing(*, organization: Organization) -> Standing:
    state = RiskState.objects.filter(organization=organization).first()
    return Standing(
        frozen_keys=ApiKey.objects.filter(organization=organization, state=KeyState.FROZEN).count(),
        throttle_factor=Organization.objects.values_list("throttle_factor", flat=True).get(pk=organization.pk),
        suspended=bool(state and state.suspended_at),
        strikes=organization_strikes(organization_id=organization.pk),
        decisions=list(
            AuditEntry.objects.filter(organization_id=organization.pk, action__in=_MEMBER_VISIBLE_ACTIONS)[:10]
        ),
        appeals=list(Appeal.objects.filter(organization=organization)[:10]),
    )


# A reviewer's decision on a freeze: what remediates it (a note or a warning leaves it standing).
REVIEW_DECISIONS = (AuditAction.UNFREEZE, AuditAction.SUSPEND, AuditAction.FALSE_POSITIVE)


@dataclass(frozen=True)
class FreezeReview:
    """An organization's first freeze since a moment, and the first reviewer decision on it (None: none yet)."""

    organization_id: int
    frozen_at: datetime
    decided_at: datetime | None
    decision: str | None  # an AuditAction of REVIEW_DECISIONS
    reviewer: str | None

    @property
    def seconds_to_decision(self) -> float | None:
        return None if self.decided_at is None else (self.decided_at - self.frozen_at).total_seconds()


def freeze_reviews(*, organization_ids: Iterable[int], since: datetime) -> dict[int, FreezeReview]:
    """The organizations among `organization_ids` frozen at or after `since`, each with its first freeze and the
    first decision a staff member recorded on it afterwards (an action of the jobs is never a decision). Two
    queries, read from the audit log alone."""
    ids = list(organization_ids)
    frozen: dict[int, datetime] = {}
    freezes = AuditEntry.objects.filter(organization_id__in=ids, action=AuditAction.FREEZE, created_at__gte=since)
    for organization_id, at in freezes.order_by("created_at", "pk").values_list("organization_id", "created_at"):
        frozen.setdefault(organization_id, at)
    reviews = {pk: FreezeReview(pk, at, None, None, None) for pk, at in frozen.items()}
    decisions = AuditEntry.objects.filter(
        organization_id__in=list(frozen), action__in=REVIEW_DECISIONS, actor__isnull=False, created_at__gte=since
    ).order_by("created_at", "pk")
    for entry in decisions:
        review = reviews[entry.organization_id]
        if review.decided_at is None and entry.created_at >= review.frozen_at:
            reviews[entry.organization_id] = FreezeReview(
                entry.organization_id, review.frozen_at, entry.created_at, entry.action, entry.actor_label
            )
    return reviews
