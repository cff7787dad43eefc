"""Settings of the platform processes the fault tests start (DJANGO_SETTINGS_MODULE=tests.faults.process_settings):
the real settings, with two test-only differences, each switched on by the environment.

- FAULTS_FAST_BEAT=1: the beat schedule compressed to one second for the idempotent jobs under test, so two beat
  processes send each of them many times within seconds (the real schedule runs them every minute or hour).
- FAKE_STRIPE_LOG=path: Stripe faked at the HTTP layer under the real stripe library, as the suite's other tests do
  (tests/billing/payments/fakes.py); every request is appended to `path` as a JSON line for the test to read.
"""

import json
import os
from datetime import timedelta

from config.settings import *  # noqa: F403
from config.settings import CELERY_BEAT_SCHEDULE

FAST_BEAT_ENTRIES = ("flush-query-log", "aggregate-usage", "send-usage-alerts", "payments-report-usage-to-stripe")

if os.environ.get("FAULTS_FAST_BEAT"):
    CELERY_BEAT_SCHEDULE = {
        name: {**entry, "schedule": timedelta(seconds=1), "options": {"expires": 10}}
        for name, entry in CELERY_BEAT_SCHEDULE.items()
        if name in FAST_BEAT_ENTRIES
    }

if os.environ.get("FAKE_STRIPE_LOG"):
    import stripe

    from tests.billing.payments.fakes import FakeStripeHTTPClient

    class _RecordingStripe(FakeStripeHTTPClient):
        def request(self, method, url, headers, post_data=None, *, _usage=None):
            reply = super().request(method, url, headers, post_data, _usage=_usage)
            record = self.requests[-1]
            line = json.dumps({"method": record.method, "path": record.path, "params": record.params})
            with open(os.environ["FAKE_STRIPE_LOG"], "a") as log:  # one short append per request: atomic
                log.write(line + "\n")
            return reply

    stripe.default_http_client = _RecordingStripe()
