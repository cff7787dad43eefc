"""Simulated traffic of a served model (`abuse.simulation`) replayed into the real query log: each simulated call
becomes the record the API would have appended to the Redis stream, and the real flush moves it to PostgreSQL.
The detection benchmark, the tests and an operator calibrating thresholds (on a scratch database) replay traffic
this way."""

from collections.abc import Sequence
from datetime import datetime

from abuse.simulation import SimulatedCall
from accounts.models import Organization
from apikeys.models import ApiKey
from serving.ml.digits import SLUG as DIGITS_SLUG
from serving.predictions.querylog import QueryRecord, querylog_append, querylog_flush

_STATUS = {"rate_limited": 429, "not_found": 404, "model_not_found": 404, "method_not_allowed": 405,
           "payload_too_large": 413, "unsupported_media_type": 415}  # fmt: skip


def simulated_call_record(
    call: SimulatedCall, *, organization: Organization, api_key: ApiKey, start: datetime, model_slug: str = DIGITS_SLUG
) -> QueryRecord:
    common = {
        "organization_id": organization.pk,
        "api_key_id": api_key.pk,
        "tier_code": organization.tier.code,
        "latency_us": 900,
        "client_ip": "198.51.100.20",
        "user_agent": "simulated-client/1.0",
        "created_at": start.timestamp() + call.at,
    }
    if call.error:
        endpoint, code = call.error.split(":", 1)
        return QueryRecord(
            endpoint=endpoint, status=_STATUS.get(code, 400), error_code=code,
            limit_window="organization_minute" if code == "rate_limited" else "", **common,
        )  # fmt: skip
    count = len(call.inputs)
    return QueryRecord(
        endpoint="predict", status=200, model_slug=model_slug, model_version="test", variant="defended",
        inputs=call.inputs.tobytes(), input_row_bytes=call.inputs.shape[1] * call.inputs.itemsize,
        labels=list(call.labels), clean_labels=list(call.labels),
        confidences=list(call.confidences), watermarked=[False] * count, **common,
    )  # fmt: skip


def simulated_calls_log(
    calls: Sequence[SimulatedCall], *, organization: Organization, start: datetime, model_slug: str = DIGITS_SLUG
) -> int:
    """Append the calls (of the model `model_slug`, default the digits demo) as the API would and flush them to
    PostgreSQL; returns the number of inputs."""
    api_key = ApiKey.objects.filter(organization=organization).order_by("pk").first()
    for call in calls:
        record = simulated_call_record(
            call, organization=organization, api_key=api_key, start=start, model_slug=model_slug
        )
        querylog_append(record)
    querylog_flush()
    return sum(len(call.inputs) for call in calls)
