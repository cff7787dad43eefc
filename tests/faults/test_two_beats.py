"""Two Celery beat processes at once (a deploy that briefly runs the old and the new one, or a second host started
by mistake): every periodic job is sent twice as often, to a worker running two at a time. The jobs are idempotent,
and this proves it on their effects: the query log is stored once, the usage rows are exact, the usage alert is
emailed once and the day's usage is reported to Stripe's meter once."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from apikeys.models import ApiKey
from billing.dashboard.models import UsageAlert
from billing.metering.models import UsageDay
from billing.payments.meter_reports import meter_report_identifier
from billing.payments.models import BillingAccount, MeterReport
from serving.predictions.models import QueryLog
from serving.predictions.querylog import querylog_append, querylog_pending
from tests.factories import OrganizationFactory, member, raw_key_for
from tests.faults.load import wait_until
from tests.faults.process_settings import FAST_BEAT_ENTRIES
from tests.processes import celery_beat, celery_worker
from tests.serving.predictions.test_querylog import record_for
from tiers.models import Tier

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

RECORDS_TODAY = 30  # two units each: 60 of the 100 included (set below), past the 50% alert and short of 80%
RECORDS_YESTERDAY = 15  # of another organization, a closed day: reported to the billing meter


def _organization_with_a_key(name: str) -> ApiKey:
    owner = member(organization=OrganizationFactory(tier=Tier.objects.get(code="pro"), name=name))
    organization = owner.membership.organization
    raw_key_for(organization)
    BillingAccount.objects.create(organization=organization, stripe_customer_id=f"cus_{name}")
    return ApiKey.objects.get(organization=organization)


def test_two_beat_processes_cause_no_duplicate_effect(tmp_path):
    Tier.objects.filter(code="pro").update(monthly_included_requests=100)
    alerted, metered = _organization_with_a_key("Alerted"), _organization_with_a_key("Metered")
    now = datetime.now(UTC)
    yesterday = now - timedelta(days=1)
    records = [record_for(alerted, tier_code="pro") for _ in range(RECORDS_TODAY)]
    records += [
        record_for(metered, tier_code="pro", created_at=yesterday.timestamp()) for _ in range(RECORDS_YESTERDAY)
    ]
    for record in records:  # answered, not yet flushed: the beats' flushes move them
        querylog_append(record)

    outbox, stripe_log = tmp_path / "mail", tmp_path / "stripe.jsonl"
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.faults.process_settings",
        "FAULTS_FAST_BEAT": "1",
        "FAKE_STRIPE_LOG": str(stripe_log),
        "STRIPE_API_KEY": "sk_test_faults",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(outbox),
    }
    beat_logs = [tmp_path / "beat-1.log", tmp_path / "beat-2.log"]
    report_id = meter_report_identifier(organization_id=metered.organization_id, day=yesterday.date())

    def sends(log, entry: str) -> int:
        return log.read_text().count(f"Sending due task {entry} ")

    with (
        celery_worker(log_path=tmp_path / "worker.log", extra_env=env, concurrency=2),
        celery_beat(log_path=beat_logs[0], extra_env=env),
        celery_beat(log_path=beat_logs[1], extra_env=env),
    ):
        started = time.monotonic()
        wait_until(
            lambda: (
                all(sends(log, entry) >= 4 for log in beat_logs for entry in FAST_BEAT_ENTRIES)
                and querylog_pending() == 0
                and MeterReport.objects.filter(identifier=report_id, status="sent").exists()
                and UsageAlert.objects.exists()
            ),
            timeout=90,
            what="every job sent at least four times by each beat, and its effect done",
            interval=0.2,
        )
        seconds = time.monotonic() - started
    sent = {entry: [sends(log, entry) for log in beat_logs] for entry in FAST_BEAT_ENTRIES}
    meter_events = [
        json.loads(line) for line in stripe_log.read_text().splitlines() if '"/v1/billing/meter_events"' in line
    ]
    print(f"\nTwo beats for {seconds:.1f} s: sends per job and beat {sent}; meter events {len(meter_events)}")

    # The query log: every record once.
    stored = [str(r) for r in QueryLog.objects.values_list("request_id", flat=True)]
    assert sorted(stored) == sorted(record.request_id for record in records)
    # The usage rows: exact, whatever the number of runs.
    rows = {(row.organization_id, row.day): (row.requests, row.units) for row in UsageDay.objects.all()}
    assert rows == {
        (alerted.organization_id, now.date()): (RECORDS_TODAY, 2 * RECORDS_TODAY),
        (metered.organization_id, yesterday.date()): (RECORDS_YESTERDAY, 2 * RECORDS_YESTERDAY),
    }
    # The alert: one row, one email.
    assert list(UsageAlert.objects.values_list("organization_id", "threshold")) == [(alerted.organization_id, 50)]
    assert len(list(outbox.iterdir())) == 1
    # The meter: one report, sent once, with its stable identifier.
    assert [(e["params"]["identifier"], e["params"]["payload[value]"]) for e in meter_events] == [
        (report_id, str(2 * RECORDS_YESTERDAY))
    ]
    assert MeterReport.objects.get().attempts == 1
