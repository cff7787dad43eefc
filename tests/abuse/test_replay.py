"""Replaying simulated calls writes exactly the query-log rows the API would have written, through the real log."""

from datetime import UTC, datetime

import numpy as np
import pytest

from abuse.replay import simulated_calls_log
from abuse.simulation import SimulatedCall
from serving.predictions.models import QueryLog
from serving.predictions.querylog import querylog_pending
from tests.factories import member, raw_key_for

pytestmark = pytest.mark.django_db


def test_calls_and_errors_land_in_postgresql_with_their_own_times_inputs_and_answers():
    organization = member().membership.organization
    raw_key_for(organization)
    inputs = np.arange(128, dtype=np.uint8).reshape(2, 64) % 17
    calls = [
        SimulatedCall(at=0.0, inputs=inputs, labels=["3", "7"], confidences=[0.9, 0.4]),
        SimulatedCall(at=12.5, inputs=np.zeros((0, 64), dtype=np.uint8), error="models:model_not_found"),
        SimulatedCall(at=20.0, inputs=np.zeros((0, 64), dtype=np.uint8), error="predict:rate_limited"),
    ]
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

    assert simulated_calls_log(calls, organization=organization, start=start) == 2

    assert querylog_pending() == 0
    served, missing, throttled = QueryLog.objects.filter(organization=organization).order_by("created_at")
    assert (served.created_at, served.endpoint, served.status, served.batch_size) == (start, "predict", 200, 2)
    assert bytes(served.inputs) == inputs.tobytes()
    assert (served.labels, served.confidences) == (["3", "7"], [0.9, 0.4])
    assert (missing.endpoint, missing.status, missing.error_code) == ("models", 404, "model_not_found")
    assert (missing.created_at - start).total_seconds() == 12.5
    assert (throttled.status, throttled.error_code, throttled.limit_window) == (
        429, "rate_limited", "organization_minute",
    )  # fmt: skip
