"""The extraction-risk job end to end on real PostgreSQL and Redis: simulated traffic goes through the real query
log, the job (as `run_abuse_jobs` and as the Celery task) scores it, stores the score with its reasons, and
throttles or freezes; reviewed organizations are not punished twice for the same traffic."""

import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connections
from django.test import Client
from django.utils import timezone

from abuse import simulation
from abuse.models import AuditAction, AuditEntry, RiskAssessment, RiskLevel, RiskState
from abuse.replay import simulated_calls_log
from abuse.rings import ABUSE_LOCK_CLASS
from abuse.risk import RISK_LOCK, extraction_risk_assess_all
from abuse.services import Actor, organization_throttle, organization_unfreeze
from abuse.tasks import assess_extraction_risk
from accounts.models import Organization
from apikeys.models import ApiKey, KeyState
from tests.factories import OrganizationFactory, UserFactory, member, raw_key_for
from tiers.models import Tier

pytestmark = pytest.mark.django_db


def _customer(tier: str = "free", name: str = "Acme") -> tuple[Organization, str]:
    organization = member(organization=OrganizationFactory(name=name, tier=Tier.objects.get(code=tier)))
    organization = organization.membership.organization
    return organization, raw_key_for(organization)


def _send(organization: Organization, calls: list, *, ended_ago: timedelta = timedelta(seconds=1)) -> int:
    """Log the calls as if the last one was made `ended_ago`."""
    duration = timedelta(seconds=calls[-1].at if calls else 0)
    return simulated_calls_log(calls, organization=organization, start=timezone.now() - ended_ago - duration)


def _run_jobs(capture) -> str:
    out = StringIO()
    with capture(execute=True):
        call_command("run_abuse_jobs", stdout=out)
    return out.getvalue()


def _predict_status(raw_key: str) -> tuple[int, str]:
    response = Client().post(
        "/v1/models/digits/predict", {"inputs": [[0] * 64]}, content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw_key}",
    )  # fmt: skip
    return response.status_code, response.json().get("error", {}).get("code", "")


def test_a_uniform_random_attacker_is_frozen_with_its_score_reasons_and_an_email(
    registered_digits, django_capture_on_commit_callbacks
):
    thief, key = _customer(name="Copycat")
    assert _predict_status(key)[0] == 200
    _send(thief, simulation.uniform_random_attacker(seed=1, queries=1000, tier="free"))

    out = _run_jobs(django_capture_on_commit_callbacks)

    assert set(ApiKey.objects.filter(organization=thief).values_list("state", flat=True)) == {KeyState.FROZEN}
    assert _predict_status(key) == (403, "key_frozen")
    state = RiskState.objects.get(organization=thief)
    assert state.level == RiskLevel.FREEZE and state.score >= 80 and state.top_reasons
    (assessment,) = RiskAssessment.objects.filter(organization=thief)
    assert assessment.queries == 1001 and assessment.score == state.score  # the probe before the campaign too
    by_name = {c["name"]: c for c in assessment.components}
    assert by_name["unnatural_inputs"]["points"] > 0 and by_name["unnatural_inputs"]["detail"]
    assert assessment.explanation
    (freeze,) = AuditEntry.objects.filter(organization_id=thief.pk, action=AuditAction.FREEZE)
    assert freeze.actor_label == "abuse jobs" and freeze.details["score"] == state.score
    assert [m.subject for m in mail.outbox] == ["Your Moat API keys are frozen"]
    assert f"organization {thief.pk}: {state.score}/100 (freeze)" in out


def test_honest_customers_are_scored_and_left_alone(registered_digits, django_capture_on_commit_callbacks):
    customers = []
    for seed, tier in [(11, "free"), (12, "pro"), (13, "pro")]:
        organization, _ = _customer(tier=tier, name=f"Honest {seed}")
        _send(organization, simulation.honest_user(seed=seed, calls=150, tier=tier))
        customers.append(organization)

    _run_jobs(django_capture_on_commit_callbacks)

    for organization in customers:
        state = RiskState.objects.get(organization=organization)
        assert state.level == RiskLevel.NORMAL, state.explanation
        assert RiskAssessment.objects.filter(organization=organization).count() == 1
        assert not ApiKey.objects.filter(organization=organization).exclude(state=KeyState.ACTIVE).exists()
        assert Organization.objects.get(pk=organization.pk).throttle_factor == 1.0
    assert not AuditEntry.objects.exists()
    assert mail.outbox == []


def test_between_the_thresholds_the_jobs_throttle_and_lift_their_throttle_when_the_risk_falls(
    registered_digits, settings, django_capture_on_commit_callbacks
):
    settings.ABUSE_FREEZE_SCORE = 101  # nothing freezes: the throttle band is under test
    thief, _ = _customer(name="Copycat")
    reviewed, _ = _customer(name="Reviewed")
    _send(thief, simulation.uniform_random_attacker(seed=2, queries=600, tier="free"))
    organization_throttle(organization=reviewed, actor=Actor(user=UserFactory(is_staff=True)), reason="Watch.")

    _run_jobs(django_capture_on_commit_callbacks)
    thief.refresh_from_db()
    assert (thief.throttle_factor, thief.throttle_set_by) == (0.25, "abuse jobs")
    assert ApiKey.objects.filter(organization=thief, state=KeyState.ACTIVE).count() == 1

    # The risk falls (here: the bar rises above any score): the jobs lift their own throttle, not a reviewer's.
    settings.ABUSE_THROTTLE_SCORE = settings.ABUSE_CLEAR_THROTTLE_SCORE = 101
    _send(thief, simulation.uniform_random_attacker(seed=3, queries=10, tier="free"))
    _send(reviewed, simulation.honest_user(seed=4, calls=5, tier="free"))
    _run_jobs(django_capture_on_commit_callbacks)
    thief.refresh_from_db()
    reviewed.refresh_from_db()
    assert thief.throttle_factor == 1.0
    assert reviewed.throttle_factor == 0.25
    assert [e.action for e in AuditEntry.objects.filter(organization_id=thief.pk).order_by("pk")] == [
        AuditAction.THROTTLE, AuditAction.CLEAR_THROTTLE,
    ]  # fmt: skip


def test_an_organization_that_keeps_on_after_the_jobs_throttle_it_is_frozen(
    registered_digits, settings, django_capture_on_commit_callbacks
):
    settings.ABUSE_FREEZE_SCORE = 101  # its score stays in the throttle band: only persistence can freeze it
    thief, _ = _customer(name="Prober")
    watched, _ = _customer(name="Watched")
    _send(thief, simulation.uniform_random_attacker(seed=2, queries=600, tier="free"), ended_ago=timedelta(hours=2))
    _send(watched, simulation.uniform_random_attacker(seed=5, queries=600, tier="free"), ended_ago=timedelta(hours=2))
    organization_throttle(organization=watched, actor=Actor(user=UserFactory(is_staff=True)), reason="Watch.")
    _run_jobs(django_capture_on_commit_callbacks)
    thief.refresh_from_db()
    assert (thief.throttle_factor, thief.throttle_set_by) == (0.25, "abuse jobs")
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Organization.objects.filter(pk__in=[thief.pk, watched.pk]).update(throttle_set_at=an_hour_ago)

    # 400 inputs since the throttle: below ABUSE_PERSISTENCE_INPUTS (500), still only throttled.
    _send(thief, simulation.uniform_random_attacker(seed=3, queries=400, tier="free"))
    _run_jobs(django_capture_on_commit_callbacks)
    assert ApiKey.objects.filter(organization=thief, state=KeyState.ACTIVE).count() == 1

    # 100 more, the score still at the throttle level: the warning went unheeded.
    _send(thief, simulation.uniform_random_attacker(seed=4, queries=100, tier="free"))
    _send(watched, simulation.uniform_random_attacker(seed=6, queries=600, tier="free"))
    _run_jobs(django_capture_on_commit_callbacks)

    assert set(ApiKey.objects.filter(organization=thief).values_list("state", flat=True)) == {KeyState.FROZEN}
    freeze = AuditEntry.objects.get(organization_id=thief.pk, action=AuditAction.FREEZE)
    assert freeze.reason.startswith(
        f"Throttled for extraction risk on {an_hour_ago:%Y-%m-%d %H:%M} UTC and kept on: 500 more inputs since,"
    )
    assert freeze.details["inputs_since_throttle"] == 500
    # A reviewer's throttle is the reviewer's to escalate: the jobs leave that organization throttled.
    assert ApiKey.objects.filter(organization=watched, state=KeyState.ACTIVE).count() == 1


def test_the_throttle_dates_from_the_run_that_judged_so_a_replay_on_a_past_clock_escalates_too(
    registered_digits, settings
):
    # The detection benchmark runs the jobs on a simulated clock in the past: the throttle's moment must be the
    # run's, or nothing would ever be counted after it (the bug the benchmark showed).
    settings.ABUSE_FREEZE_SCORE = 101
    thief, _ = _customer(name="Replayed")
    first = simulation.uniform_random_attacker(seed=2, queries=600, tier="free")
    _send(thief, first, ended_ago=timedelta(hours=3))
    judged_at = timezone.now() - timedelta(hours=3) + timedelta(seconds=30)

    extraction_risk_assess_all(now=judged_at)
    thief.refresh_from_db()
    assert thief.throttle_set_at == judged_at

    _send(thief, simulation.uniform_random_attacker(seed=3, queries=500, tier="free"), ended_ago=timedelta(hours=2))
    extraction_risk_assess_all(now=timezone.now() - timedelta(hours=2) + timedelta(seconds=30))
    assert set(ApiKey.objects.filter(organization=thief).values_list("state", flat=True)) == {KeyState.FROZEN}


def test_a_second_run_in_the_same_bucket_rewrites_its_score_and_acts_once(
    registered_digits, settings, django_capture_on_commit_callbacks
):
    settings.ABUSE_HISTORY_BUCKET = timedelta(days=36500)  # both runs in one bucket, whatever the clock says
    thief, _ = _customer(name="Copycat")
    _send(thief, simulation.boundary_prober(seed=5, queries=800, tier="free"))
    _run_jobs(django_capture_on_commit_callbacks)
    _send(thief, simulation.boundary_prober(seed=6, queries=20, tier="free"))
    _run_jobs(django_capture_on_commit_callbacks)

    assert RiskAssessment.objects.filter(organization=thief).count() == 1
    assert RiskAssessment.objects.get(organization=thief).queries == 820
    assert AuditEntry.objects.filter(organization_id=thief.pk, action=AuditAction.FREEZE).count() == 1
    assert len(mail.outbox) == 1


def test_after_a_review_the_same_traffic_does_not_freeze_again_but_new_abuse_does(
    registered_digits, django_capture_on_commit_callbacks
):
    thief, _ = _customer(name="Copycat")
    _send(thief, simulation.perturbation_walker(seed=7, queries=800, tier="free"), ended_ago=timedelta(hours=2))
    _run_jobs(django_capture_on_commit_callbacks)
    organization_unfreeze(organization=thief, actor=Actor(user=UserFactory(is_staff=True)), reason="Appeal heard.")
    # As if the review happened an hour ago: the walk above is reviewed evidence, what follows is new.
    RiskState.objects.filter(organization=thief).update(cleared_at=timezone.now() - timedelta(hours=1))

    _send(thief, simulation.honest_user(seed=8, calls=3, tier="free"))  # new traffic, so the job looks again
    _run_jobs(django_capture_on_commit_callbacks)
    assert ApiKey.objects.filter(organization=thief, state=KeyState.ACTIVE).count() == 1

    _send(thief, simulation.perturbation_walker(seed=9, queries=800, tier="free"))
    _run_jobs(django_capture_on_commit_callbacks)
    assert ApiKey.objects.filter(organization=thief, state=KeyState.FROZEN).count() == 1
    assert AuditEntry.objects.filter(organization_id=thief.pk, action=AuditAction.FREEZE).count() == 2


def test_the_celery_task_runs_the_job(registered_digits, django_capture_on_commit_callbacks):
    thief, _ = _customer(name="Copycat")
    _send(thief, simulation.uniform_random_attacker(seed=10, queries=700, tier="free"))
    with django_capture_on_commit_callbacks(execute=True):
        assert assess_extraction_risk.delay().get(timeout=60) == 1
    assert ApiKey.objects.get(organization=thief).state == KeyState.FROZEN


def test_a_run_that_finds_another_in_progress_stops_at_once(registered_digits):
    thief, _ = _customer(name="Copycat")
    _send(thief, simulation.uniform_random_attacker(seed=11, queries=700, tier="free"))
    holding, release = threading.Event(), threading.Event()

    def other_run() -> None:
        with connections["default"].cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [ABUSE_LOCK_CLASS, RISK_LOCK])
            holding.set()
            release.wait(timeout=30)
            cursor.execute("COMMIT")
        connections["default"].close()

    thread = threading.Thread(target=other_run)
    thread.start()
    try:
        assert holding.wait(timeout=10)
        assert extraction_risk_assess_all() == []
        assert ApiKey.objects.get(organization=thief).state == KeyState.ACTIVE
    finally:
        release.set()
        thread.join()
    assert len(extraction_risk_assess_all()) == 1


def _ring_of(count: int, *, stem: str = "clone") -> list[Organization]:
    from abuse.rings import signup_rings_refresh
    from tests.factories import SignupRecordFactory

    organizations = []
    for n in range(1, count + 1):
        user = member(email=f"{stem}{n}@gmail.com")
        SignupRecordFactory(
            user=user, ip_address=f"203.0.113.{10 + n}", created_at=timezone.now() - timedelta(minutes=60 - 5 * n)
        )
        raw_key_for(user.membership.organization)
        organizations.append(user.membership.organization)
    assert len(signup_rings_refresh()) == 1
    return organizations


def _retrain_as_a_ring_and_run_the_jobs(sybils: list[Organization], capture) -> tuple[RiskAssessment, list]:
    """Five accounts share out one actor's natural-data retraining (400 inputs each); after the jobs every key is
    frozen, with the ring's merged assessment as the reason. Returns that assessment and the freezes."""
    streams = simulation.sybil_ring(accounts=5, seed=12, strategy="natural_data", queries_per_account=400)
    for organization, calls in zip(sybils, streams, strict=True):
        _send(organization, calls)

    _run_jobs(capture)

    assert set(ApiKey.objects.filter(organization__in=sybils).values_list("state", flat=True)) == {KeyState.FROZEN}
    (ring_assessment,) = RiskAssessment.objects.filter(ring__isnull=False)
    assert ring_assessment.queries == 2000 and ring_assessment.score >= 80
    freezes = list(AuditEntry.objects.filter(action=AuditAction.FREEZE, organization_id__in=[o.pk for o in sybils]))
    assert len(freezes) == 5 and {entry.ring_id for entry in freezes} == {ring_assessment.ring_id}
    return ring_assessment, freezes


def test_a_sybil_ring_retraining_on_natural_data_is_frozen_as_a_ring(
    registered_digits, django_capture_on_commit_callbacks
):
    sybils = _ring_of(5)

    ring_assessment, _ = _retrain_as_a_ring_and_run_the_jobs(sybils, django_capture_on_commit_callbacks)

    assert {c["name"]: c["points"] for c in ring_assessment.components}["linked_accounts"] > 0
    # Each member alone looks like an honest customer: it is the ring that gives them away.
    for organization in sybils:
        assert RiskAssessment.objects.get(organization=organization).score < 50


def test_one_member_caught_extracting_freezes_its_whole_ring(registered_digits, django_capture_on_commit_callbacks):
    thief, quiet = _ring_of(2, stem="probe")
    _send(thief, simulation.uniform_random_attacker(seed=13, queries=800, tier="free"))
    _send(quiet, simulation.honest_user(seed=14, calls=3, tier="free"))

    _run_jobs(django_capture_on_commit_callbacks)

    assert ApiKey.objects.get(organization=quiet).state == KeyState.FROZEN
    reason = AuditEntry.objects.get(action=AuditAction.FREEZE, organization_id=quiet.pk).reason
    assert reason.startswith("Signed up as part of ring ") and "Extraction risk" in reason


def _likely_ring_of(count: int) -> list[Organization]:
    """One program's sign-ups from one /24, ten minutes apart, with unrelated webmail names: too slow for a burst,
    so the sign-ups make a likely ring, not a certain one."""
    from abuse.models import Ring, RingLevel
    from abuse.rings import signup_rings_refresh
    from tests.factories import SignupRecordFactory

    names = ["kqvl", "mzrt", "bxwe", "pjdn", "tfgo", "hyua"]
    organizations = []
    for n in range(count):
        user = member(email=f"{names[n]}@gmail.com")
        SignupRecordFactory(
            user=user, ip_address=f"192.0.2.{10 + n}", user_agent="python-requests/2.32.3",
            created_at=timezone.now() - timedelta(minutes=90 - 10 * n),
        )  # fmt: skip
        raw_key_for(user.membership.organization)
        organizations.append(user.membership.organization)
    (ring,) = signup_rings_refresh()
    assert Ring.objects.get(pk=ring.pk).level == RingLevel.LIKELY
    return organizations


def test_a_likely_ring_retraining_on_natural_data_is_frozen_as_a_ring_before_it_is_certain(
    registered_digits, django_capture_on_commit_callbacks
):
    sybils = _likely_ring_of(5)

    ring_assessment, freezes = _retrain_as_a_ring_and_run_the_jobs(sybils, django_capture_on_commit_callbacks)

    assert {entry.reason.split(" whose")[0] for entry in freezes} == {
        f"Signed up as part of ring {ring_assessment.ring_id}, likely one operator's,"
    }
    # Each member alone looks like an honest customer: it is the likely ring's merged traffic that gives them away.
    for organization in sybils:
        assert RiskAssessment.objects.get(organization=organization).score < 50


def test_quiet_accounts_only_likely_linked_to_one_caught_extracting_are_judged_on_their_own_traffic(
    registered_digits, django_capture_on_commit_callbacks
):
    thief, *quiet = _likely_ring_of(4)
    _send(thief, simulation.uniform_random_attacker(seed=13, queries=800, tier="free"))
    for seed, organization in enumerate(quiet, 20):
        _send(organization, simulation.honest_user(seed=seed, calls=3, tier="free"))

    _run_jobs(django_capture_on_commit_callbacks)

    # The ring's merged window is the thief's traffic: it freezes the thief, who carries it, and does not act on
    # those who sent almost none of it (a certain ring's would: see the test above).
    assert ApiKey.objects.get(organization=thief).state == KeyState.FROZEN
    (ring_assessment,) = RiskAssessment.objects.filter(ring__isnull=False)
    assert ring_assessment.score >= 80
    assert AuditEntry.objects.filter(action=AuditAction.FREEZE).values_list("organization_id", flat=True).get() == (
        thief.pk
    )
    for organization in quiet:
        assert ApiKey.objects.get(organization=organization).state == KeyState.ACTIVE
        assert Organization.objects.get(pk=organization.pk).throttle_factor == 1.0
        state = RiskState.objects.get(organization=organization)
        assert (state.level, state.ring_id) == (RiskLevel.NORMAL, ring_assessment.ring_id)


def test_each_model_an_organization_queries_is_scored_on_its_own_inputs_and_the_score_names_the_model(
    registered_digits, registered_breast_cancer, django_capture_on_commit_callbacks
):
    """Inputs of different models are not comparable (64 one-byte pixels, 30 two-byte measurements): the job reads
    each model's inputs with its schema and scores them apart; the organization stands at the worse."""
    import numpy as np

    from serving.ml.breast_cancer import load_split
    from serving.predictions.querylog import QueryRecord, querylog_append, querylog_flush
    from serving.registry.selectors import model_get, model_schema

    thief, _ = _customer(name="Copycat")
    _send(thief, simulation.uniform_random_attacker(seed=1, queries=1000, tier="free"))
    schema = model_schema(model=model_get(slug="breast-cancer"))
    rows = schema.codes(load_split().X_test[:20])
    api_key = ApiKey.objects.get(organization=thief)
    querylog_append(
        QueryRecord(
            organization_id=thief.pk, api_key_id=api_key.pk, tier_code="free", endpoint="predict", status=200,
            latency_us=500, client_ip="198.51.100.7", user_agent="x", model_slug="breast-cancer",
            model_version=registered_breast_cancer["defended"].version, variant="defended", inputs=rows.tobytes(),
            input_row_bytes=schema.row_bytes, labels=["benign"] * 20, clean_labels=["benign"] * 20,
            confidences=[0.9] * 20, watermarked=[False] * 20,
        )
    )  # fmt: skip
    querylog_flush()

    _run_jobs(django_capture_on_commit_callbacks)

    state = RiskState.objects.get(organization=thief)
    assert state.level == RiskLevel.FREEZE
    assert state.explanation.startswith("On model 'digits': Extraction risk")
    assert rows.dtype == np.uint16
