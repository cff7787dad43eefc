"""Reads of the staff console: the overview dashboard, the review queue, an organization's evidence, rings and the
audit log. Staff see every tenant, so nothing here is scoped to an organization unless it says so; the views reach
these only through `staff_only`. Times are UTC and every window is given explicitly (`now`), so tests pin them."""

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDate, TruncHour

from abuse.models import Appeal, AuditEntry, Ring, RingMember, RingStatus, RiskAssessment, RiskState, SignupLink
from accounts.models import Organization, SignupRecord
from apikeys.models import ApiKey, KeyState
from console.geo import countries_of
from serving.predictions.models import QueryLog

CONFIDENCE_BINS = 10


def _served(queries: QuerySet) -> QuerySet:
    # Inputs that were answered: what the customer received (and what an extraction attack trains on).
    return queries.filter(endpoint="predict", status=200)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _per_day(queryset: QuerySet, *, field: str, today: date, days: int) -> list[tuple[date, int]]:
    """Rows of `queryset` per UTC day of `field`, the `days` days up to and including `today`, zero-filled."""
    first = today - timedelta(days=days - 1)
    counts = dict(
        queryset.filter(**{f"{field}__gte": _midnight(first), f"{field}__lt": _midnight(today + timedelta(days=1))})
        .annotate(day=TruncDate(field, tzinfo=UTC)).values("day").annotate(n=Count("pk")).values_list("day", "n")
        .order_by()
    )  # fmt: skip
    return [(first + timedelta(days=i), counts.get(first + timedelta(days=i), 0)) for i in range(days)]


# --- Overview -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrganizationVolume:
    organization_id: int
    name: str
    tier_code: str
    inputs: int
    calls: int


def top_organizations_by_volume(*, since: datetime, limit: int = 10) -> list[OrganizationVolume]:
    """The `limit` organizations that were served the most inputs since `since` (ties by id), with their calls."""
    rows = list(
        _served(QueryLog.objects.filter(created_at__gte=since)).values("organization_id")
        .annotate(inputs=Sum("batch_size"), calls=Count("pk")).order_by("-inputs", "organization_id")[:limit]
    )  # fmt: skip
    organizations = Organization.objects.select_related("tier").in_bulk([row["organization_id"] for row in rows])
    result = []
    for row in rows:
        organization = organizations.get(row["organization_id"])
        result.append(
            OrganizationVolume(
                organization_id=row["organization_id"],
                # The log outlives deleted organizations (no constraint): name those by id.
                name=organization.name if organization else f"Deleted organization {row['organization_id']}",
                tier_code=organization.tier.code if organization else "",
                inputs=row["inputs"] or 0,
                calls=row["calls"],
            )
        )
    return result


def confidence_histogram(
    *, since: datetime, until: datetime | None = None, organization_id: int | None = None, bins: int = CONFIDENCE_BINS
) -> list[int]:
    """How many served inputs had their confidence in each of `bins` equal bins of [0, 1] (1.0 in the last one).
    Counted in PostgreSQL: a day of confidences is too many floats to bring into Python."""
    conditions = ["q.created_at >= %s", "q.endpoint = 'predict'", "q.status = 200"]
    params: list = [bins, bins, since]
    if until is not None:
        conditions.append("q.created_at < %s")
        params.append(until)
    if organization_id is not None:
        conditions.append("q.organization_id = %s")
        params.append(organization_id)
    # Only the table name (from the model, not from input) is formatted into the query; values are parameters.
    sql = (
        "SELECT LEAST(GREATEST(FLOOR(c * %s), 0), %s - 1)::int AS bin, COUNT(*) "  # noqa: S608  # nosec B608
        f"FROM {QueryLog._meta.db_table} AS q CROSS JOIN LATERAL unnest(q.confidences) AS c "
        f"WHERE {' AND '.join(conditions)} GROUP BY bin"
    )
    counts = [0] * bins
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for index, count in cursor.fetchall():
            counts[index] = count
    return counts


def requests_by_country(*, since: datetime) -> list[tuple[str, int]]:
    """API calls since `since` per country of the client address (ISO code, "Private network" or "Unknown"), most
    first. Grouped by address in the database, then each distinct address is looked up once, offline."""
    per_address = list(
        QueryLog.objects.filter(created_at__gte=since).values("client_ip").annotate(n=Count("pk"))
        .values_list("client_ip", "n").order_by()
    )  # fmt: skip
    totals: Counter[str] = Counter()
    for country, (_, count) in zip(countries_of(ip for ip, _ in per_address), per_address, strict=True):
        totals[country] += count
    return sorted(totals.items(), key=lambda item: (-item[1], item[0]))


def throttle_events_per_day(*, today: date, days: int = 14) -> list[tuple[date, int]]:
    """Calls refused with 429 (a rate, quota or adaptive-throttle window) per UTC day."""
    return _per_day(QueryLog.objects.filter(status=429), field="created_at", today=today, days=days)


def signups_per_day(*, today: date, days: int = 14) -> list[tuple[date, int]]:
    return _per_day(SignupRecord.objects.all(), field="created_at", today=today, days=days)


def rings_found_per_day(*, today: date, days: int = 14) -> list[tuple[date, int]]:
    """Rings created by the ring job per UTC day (merged ones too: each was found that day)."""
    return _per_day(Ring.objects.all(), field="created_at", today=today, days=days)


@dataclass(frozen=True)
class FrozenKeys:
    total: int
    organizations: list[tuple[int, str, int]]  # (organization id, name, frozen keys), most first


def frozen_keys_summary() -> FrozenKeys:
    rows = list(
        ApiKey.objects.filter(state=KeyState.FROZEN).values("organization_id", "organization__name")
        .annotate(n=Count("pk")).order_by("-n", "organization__name", "organization_id")
    )  # fmt: skip
    return FrozenKeys(
        total=sum(row["n"] for row in rows),
        organizations=[(row["organization_id"], row["organization__name"], row["n"]) for row in rows],
    )


# --- Review queue -------------------------------------------------------------------------------------------------


def review_queue(*, level: str | None = None) -> QuerySet[Organization]:
    """Every organization, riskiest first: RiskState score descending, then the rise since the previous score, then
    id. An organization the jobs have not assessed yet counts as score 0, level normal. Annotated with `score`,
    `trend`, `level`, `ring_id` and `open_appeal`."""
    queryset = (
        Organization.objects.select_related("tier", "risk")
        .annotate(
            score=Coalesce(F("risk__score"), Value(0)),
            trend=Coalesce(F("risk__score") - F("risk__previous_score"), Value(0)),
            risk_level=Coalesce(F("risk__level"), Value("normal")),
            open_appeal=Exists(Appeal.objects.filter(organization=OuterRef("pk"), resolved_at__isnull=True)),
        )
        .order_by("-score", "-trend", "pk")
    )
    if level:
        queryset = queryset.filter(risk_level=level)
    return queryset


def key_state_counts(*, organization_ids: list[int]) -> dict[int, dict[str, int]]:
    """{organization id: {active, frozen, revoked: count}} for the given organizations (zeros included)."""
    counts = {org: dict.fromkeys(KeyState.values, 0) for org in organization_ids}
    rows = (
        ApiKey.objects.filter(organization_id__in=organization_ids).values("organization_id", "state")
        .annotate(n=Count("pk")).values_list("organization_id", "state", "n").order_by()
    )  # fmt: skip
    for organization_id, state, n in rows:
        counts[organization_id][state] = n
    return counts


# --- One organization ---------------------------------------------------------------------------------------------


def organization_get_for_review(*, organization_id: int) -> Organization | None:
    return Organization.objects.select_related("tier").filter(pk=organization_id).first()


def risk_state_for(*, organization: Organization) -> RiskState | None:
    return RiskState.objects.select_related("ring").filter(organization=organization).first()


def risk_history(
    *, organization_id: int | None = None, ring_id: int | None = None, limit: int = 48
) -> list[RiskAssessment]:
    """The latest `limit` assessments of an organization (or of a ring), oldest first."""
    subject = Q(organization_id=organization_id) if organization_id is not None else Q(ring_id=ring_id)
    latest = list(RiskAssessment.objects.filter(subject).order_by("-bucket")[:limit])
    latest.reverse()
    return latest


def hourly_inputs(*, organization_id: int, now: datetime, hours: int = 48) -> list[tuple[datetime, int]]:
    """Inputs served to the organization per UTC hour, the `hours` hours up to and including the current one."""
    current = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    first = current - timedelta(hours=hours - 1)
    counts = dict(
        _served(QueryLog.objects.filter(organization_id=organization_id, created_at__gte=first))
        .annotate(hour=TruncHour("created_at", tzinfo=UTC)).values("hour").annotate(n=Sum("batch_size"))
        .values_list("hour", "n").order_by()
    )  # fmt: skip
    return [(first + timedelta(hours=i), counts.get(first + timedelta(hours=i)) or 0) for i in range(hours)]


def recent_queries(*, organization_id: int, limit: int = 50) -> list[QueryLog]:
    return list(
        QueryLog.objects.filter(organization_id=organization_id).select_related("api_key")
        .defer("inputs", "input_hashes", "labels", "clean_labels", "confidences", "watermarked")
        .order_by("-created_at", "-pk")[:limit]
    )  # fmt: skip


def throttle_events(*, organization_id: int, limit: int = 50) -> list[QueryLog]:
    """The organization's latest calls refused with 429, with the window that refused each."""
    return list(
        QueryLog.objects.filter(organization_id=organization_id, status=429)
        .only("created_at", "limit_window", "endpoint", "api_key_id").order_by("-created_at", "-pk")[:limit]
    )  # fmt: skip


@dataclass(frozen=True)
class LinkEvidence:
    other_id: int
    other_name: str
    signal: str
    weight: float
    evidence: str
    last_seen_at: datetime


def signup_records(*, organization_id: int) -> list[SignupRecord]:
    return list(SignupRecord.objects.filter(organization_id=organization_id).order_by("created_at", "pk"))


def signup_links_of(*, organization_id: int) -> list[LinkEvidence]:
    """Every sign-up link that names the organization, strongest first, with the organization at its other end."""
    links = (
        SignupLink.objects.filter(Q(low_id=organization_id) | Q(high_id=organization_id))
        .select_related("low", "high").order_by("-weight", "signal", "pk")
    )  # fmt: skip
    return [
        LinkEvidence(
            other_id=other.pk, other_name=other.name, signal=link.signal, weight=link.weight, evidence=link.evidence,
            last_seen_at=link.last_seen_at,
        )
        for link in links
        for other in [link.high if link.low_id == organization_id else link.low]
    ]  # fmt: skip


def ring_of(*, organization_id: int, state: RiskState | None) -> Ring | None:
    """The organization's ring: the one the jobs put on its risk state, else the newest live ring it belongs to."""
    if state is not None and state.ring is not None:
        return state.ring
    membership = (
        RingMember.objects.filter(organization_id=organization_id).exclude(ring__status=RingStatus.MERGED)
        .select_related("ring").order_by("-ring__created_at", "-ring_id").first()
    )  # fmt: skip
    return membership.ring if membership else None


def ring_get(*, ring_id: int) -> Ring | None:
    return Ring.objects.filter(pk=ring_id).first()


@dataclass(frozen=True)
class RingDetail:
    ring: Ring
    members: list[Organization]  # annotated with `score` (0 when not assessed)
    links: list[SignupLink]  # between members, strongest first


def ring_detail(*, ring: Ring) -> RingDetail:
    member_ids = list(RingMember.objects.filter(ring=ring).values_list("organization_id", flat=True))
    members = list(
        Organization.objects.filter(pk__in=member_ids).select_related("tier")
        .annotate(score=Coalesce(F("risk__score"), Value(0))).order_by("pk")
    )  # fmt: skip
    links = list(
        SignupLink.objects.filter(low_id__in=member_ids, high_id__in=member_ids)
        .select_related("low", "high").order_by("-weight", "low_id", "high_id", "signal")
    )  # fmt: skip
    return RingDetail(ring=ring, members=members, links=links)


def organization_keys(*, organization_id: int) -> list[ApiKey]:
    return list(ApiKey.objects.filter(organization_id=organization_id).order_by("state", "-created_at", "-pk"))


def organization_appeals(*, organization_id: int) -> list[Appeal]:
    return list(Appeal.objects.filter(organization_id=organization_id).select_related("submitted_by"))


# --- Audit log ----------------------------------------------------------------------------------------------------


def audit_entries(
    *, organization_id: int | None = None, ring_id: int | None = None, action: str | None = None
) -> QuerySet[AuditEntry]:
    """The audit log, newest first, optionally of one organization (or ring) and of one action."""
    entries = AuditEntry.objects.select_related("organization").order_by("-created_at", "-pk")
    if organization_id is not None:
        entries = entries.filter(organization_id=organization_id)
    if ring_id is not None:
        entries = entries.filter(ring_id=ring_id)
    if action:
        entries = entries.filter(action=action)
    return entries
