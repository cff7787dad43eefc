"""The staff console. Everyone but staff gets 404 on every console URL: the console does not exist for them. Among
staff, only reviewers (permission abuse.review_abuse) may act on an organization; the others read."""

from collections.abc import Callable
from datetime import date, timedelta
from functools import wraps

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from abuse.models import RiskAssessment
from abuse.selectors import organization_strikes
from abuse.services import Actor
from accounts.models import Organization
from billing.dashboard.revenue import revenue_summary
from console import charts, selectors
from console.actions import ACTIONS, action_forms
from console.forms import AuditFilterForm, ReviewQueueFilterForm
from core.errors import ApplicationError
from redteam.selectors import redteam_models, redteam_run_latest

REVIEW_PERMISSION = "abuse.review_abuse"
PAGE_SIZE = 25


def staff_only(view: Callable) -> Callable:
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not (request.user.is_authenticated and request.user.is_active and request.user.is_staff):
            raise Http404
        return view(request, *args, **kwargs)

    return wrapper


def _day_chart(series: list[tuple[date, int]]) -> charts.BarChart:
    return charts.bar_chart([(day.isoformat(), f"{day.day} {day:%b}", n) for day, n in series])


def _confidence_chart(histogram: list[int]) -> charts.BarChart:
    bins = charts.confidence_bin_labels(len(histogram))
    return charts.bar_chart([(key, label, n) for (key, label), n in zip(bins, histogram, strict=True)], ticks=4)


@staff_only
@require_safe
def home(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    today = now.date()
    day_ago = now - timedelta(hours=24)
    top = selectors.top_organizations_by_volume(since=now - timedelta(hours=1))
    countries = selectors.requests_by_country(since=day_ago)
    histogram = selectors.confidence_histogram(since=day_ago)
    context = {
        "top_organizations": top,
        "top_chart": charts.hbar_chart([(str(row.organization_id), row.name, row.inputs) for row in top]),
        "confidence_chart": _confidence_chart(histogram),
        "countries": countries,
        "country_chart": charts.hbar_chart([(country, country, n) for country, n in countries[:15]], label_width=140),
        "throttle_chart": _day_chart(selectors.throttle_events_per_day(today=today)),
        "signup_chart": _day_chart(selectors.signups_per_day(today=today)),
        "ring_chart": _day_chart(selectors.rings_found_per_day(today=today)),
        "frozen": selectors.frozen_keys_summary(),
    }
    return render(request, "console/home.html", context)


@staff_only
@require_safe
def revenue(request: HttpRequest) -> HttpResponse:
    return render(request, "console/revenue.html", {"summary": revenue_summary(now=timezone.now())})


@staff_only
@require_safe
def red_team(request: HttpRequest) -> HttpResponse:
    run = redteam_run_latest()
    return render(request, "console/red_team.html", {"run": run, "models": redteam_models(run)})


@staff_only
@require_safe
def reviews(request: HttpRequest) -> HttpResponse:
    form = ReviewQueueFilterForm(request.GET)
    level = form.cleaned_data["level"] if form.is_valid() else ""
    page = Paginator(selectors.review_queue(level=level or None), PAGE_SIZE).get_page(request.GET.get("page"))
    counts = selectors.key_state_counts(organization_ids=[org.pk for org in page])
    rows = [(organization, counts[organization.pk]) for organization in page]
    return render(request, "console/reviews.html", {"form": form, "page": page, "rows": rows})


def _organization_or_404(organization_id: int) -> Organization:
    organization = selectors.organization_get_for_review(organization_id=organization_id)
    if organization is None:
        raise Http404
    return organization


def _render_organization(
    request: HttpRequest, organization: Organization, *, bound: tuple[str, forms.Form] | None = None, status: int = 200
) -> HttpResponse:
    now = timezone.now()
    state = selectors.risk_state_for(organization=organization)
    ring = selectors.ring_of(organization_id=organization.pk, state=state)
    ring_detail = selectors.ring_detail(ring=ring) if ring else None
    history = selectors.risk_history(organization_id=organization.pk)
    hourly = selectors.hourly_inputs(organization_id=organization.pk, now=now)
    histogram = selectors.confidence_histogram(since=now - timedelta(hours=24), organization_id=organization.pk)
    context = {
        "organization": organization,
        "state": state,
        "strikes": organization_strikes(organization_id=organization.pk),
        "history": history,
        "latest": history[-1] if history else None,
        "risk_chart": _risk_chart(history),
        "volume_chart": charts.bar_chart([(h.isoformat(), f"{h.day} {h:%b %H}:00", n) for h, n in hourly]),
        "confidence_chart": _confidence_chart(histogram),
        "queries": selectors.recent_queries(organization_id=organization.pk),
        "signup_records": selectors.signup_records(organization_id=organization.pk),
        "links": selectors.signup_links_of(organization_id=organization.pk),
        "ring": ring_detail,
        "ring_graph": _ring_graph(ring_detail, current=organization.pk) if ring_detail else None,
        "throttle_events": selectors.throttle_events(organization_id=organization.pk),
        "keys": selectors.organization_keys(organization_id=organization.pk),
        "appeals": selectors.organization_appeals(organization_id=organization.pk),
        "audit": selectors.audit_entries(organization_id=organization.pk)[:50],
        "can_review": request.user.has_perm(REVIEW_PERMISSION),
        "actions": action_forms(bound=bound),
    }
    return render(request, "console/organization.html", context, status=status)


def _risk_chart(history: list[RiskAssessment]) -> charts.RiskChart:
    return charts.risk_chart(
        [
            (
                assessment.bucket.isoformat(),
                f"{assessment.bucket.day} {assessment.bucket:%b %H:%M}",
                assessment.score,
                [(c.get("name", "?"), float(c.get("points") or 0)) for c in assessment.components],
            )
            for assessment in history
        ]
    )


def _ring_graph(detail: selectors.RingDetail, *, current: int | None = None) -> charts.RingGraph:
    return charts.ring_graph(
        [(member.pk, member.name) for member in detail.members],
        [(link.low_id, link.high_id, link.signal) for link in detail.links],
        current=current,
    )


@staff_only
@require_safe
def organization(request: HttpRequest, organization_id: int) -> HttpResponse:
    return _render_organization(request, _organization_or_404(organization_id))


@staff_only
@require_POST
def organization_action(request: HttpRequest, organization_id: int, action: str) -> HttpResponse:
    # Permission before anything else: a staff member who may only read learns nothing from an action URL.
    if not request.user.has_perm(REVIEW_PERMISSION):
        raise PermissionDenied
    review_action = ACTIONS.get(action)
    if review_action is None:
        raise Http404
    target = _organization_or_404(organization_id)
    form = review_action.form_class(request.POST, prefix=review_action.slug)
    if form.is_valid():
        try:
            entry = review_action.run(target, Actor(user=request.user), form.cleaned_data)
        except ApplicationError as exc:  # ReviewActionError and any other refusal of the domain: a form error
            form.add_error(None, exc.message)
        else:
            if entry is None and review_action.nothing_to_do:
                messages.info(request, review_action.nothing_to_do)
            else:
                messages.success(request, review_action.done)
            return redirect("console:organization", organization_id=target.pk)
    return _render_organization(request, target, bound=(review_action.slug, form), status=400)


@staff_only
@require_safe
def ring(request: HttpRequest, ring_id: int) -> HttpResponse:
    found = selectors.ring_get(ring_id=ring_id)
    if found is None:
        raise Http404
    detail = selectors.ring_detail(ring=found)
    history = selectors.risk_history(ring_id=found.pk)
    context = {
        "ring": detail,
        "ring_graph": _ring_graph(detail),
        "history": history,
        "risk_chart": _risk_chart(history),
        "audit": selectors.audit_entries(ring_id=found.pk)[:50],
    }
    return render(request, "console/ring.html", context)


@staff_only
@require_safe
def audit(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    filters = form.cleaned_data if form.is_valid() else {}
    entries = selectors.audit_entries(organization_id=filters.get("organization"), action=filters.get("action"))
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    return render(request, "console/audit.html", {"form": form, "page": page})
