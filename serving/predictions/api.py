"""The /v1 prediction API: lean Django views on the hot path.

Why not DRF here: its serializer alone spends ~130 us validating 64 floats, more than the whole forward pass
(bench/README). Each view authenticates from in-memory snapshots (no PostgreSQL), validates with numpy, answers
with orjson, and appends one query-log record to Redis before answering.
"""

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from urllib.parse import unquote_plus

import numpy as np
import orjson
import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from apikeys.authentication import bearer_token
from apikeys.cache import ApiKeyContext, apikey_context
from core.db import DATABASE_UNAVAILABLE_ERRORS
from core.errors import ApplicationError
from core.http import client_ip, user_agent
from monitoring.metrics import api_call_observed
from serving.defenses import DefendedPrediction, DefenseConfig, apply_defenses
from serving.predictions.errors import (
    InvalidInputError,
    MethodNotAllowedError,
    ModelNotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    ServiceUnavailableError,
    SpendCapReachedError,
    UnsupportedMediaTypeError,
)
from serving.predictions.querylog import QueryRecord, querylog_append
from serving.predictions.runtime import ServingModel, serving_model, serving_models
from serving.predictions.selectors import usage_for_organization
from serving.predictions.validation import parse_predict_body
from serving.quotas.limiter import Decision, QuotaOutcomeUnknownError, fallback_admit, quota_consume
from tiers.cache import TierSnapshot, tier_snapshot
from tiers.models import OutputField

logger = logging.getLogger(__name__)
_NOISE_SECRET = settings.OUTPUT_NOISE_SECRET.encode()


def json_response(data: object, *, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(data), content_type="application/json", status=status)


ErrorBody = Callable[[ApplicationError], dict]


def v1_error_body(error: ApplicationError) -> dict:
    """/v1's error shape: `{"error": {"code", "message"}}`."""
    return {"error": {"code": error.code, "message": error.message}}


def error_response(error: ApplicationError, *, body: ErrorBody = v1_error_body) -> HttpResponse:
    response = json_response(body(error), status=error.status)
    if error.status == 503:
        response["Retry-After"] = "5"
    return response


class ApiCall:
    """What one API call has learned so far, for its query-log record."""

    def __init__(self, request: HttpRequest, endpoint: str) -> None:
        self.request = request
        self.endpoint = endpoint
        self.started = time.perf_counter()
        self.key: ApiKeyContext | None = None
        self.tier: TierSnapshot | None = None
        self.model_slug = ""  # the served model the call resolved to, for the metrics (never what the caller typed)
        self.predictions = 0  # the rows answered, once admitted
        self.refused_window = ""  # the quota window that refused the call, if one did

    def new_record(self, *, status: int, error_code: str = "") -> QueryRecord:
        if self.key is None:
            raise RuntimeError("only an authenticated call has a query-log record")
        return QueryRecord(
            organization_id=self.key.organization_id,
            api_key_id=self.key.key_id,
            tier_code=self.key.tier_code,
            endpoint=self.endpoint,
            status=status,
            error_code=error_code,
            latency_us=int((time.perf_counter() - self.started) * 1_000_000),
            client_ip=client_ip(self.request),
            user_agent=user_agent(self.request),
        )


@dataclass
class Served:
    """A view's answer, not yet sent: the quota decides whether it goes out or becomes a 429."""

    response: HttpResponse
    record: QueryRecord
    cost: int = 1
    billable: bool = False


_WINDOW_WORDS = {
    "key_minute": "this key's per-minute limit",
    "key_hour": "this key's hourly limit",
    "key_day": "this key's daily limit",
    "organization_minute": "your organization's per-minute limit",
    "organization_hour": "your organization's hourly limit",
    "organization_day": "your organization's daily limit",
    "organization_month": "your plan's monthly included requests",
    "fallback_minute": "a reduced limit while the service recovers",
}


def _admit(call: ApiCall, served: Served) -> Decision:
    if settings.BENCHMARK_WITHOUT_QUOTA:  # the benchmark's baseline; refused by `check --deploy`
        querylog_append(served.record)
        return Decision(admitted=True, window="none", limit=0, remaining=0, reset_seconds=0)
    try:
        return quota_consume(
            organization_id=call.key.organization_id,
            key_id=call.key.key_id,
            tier=call.tier,
            cost=served.cost,
            billable=served.billable,
            record=served.record,
        )
    except redis.RedisError as error:
        if call.tier.is_public:
            raise  # public tiers fail closed: 503
        return fallback_admit(
            organization_id=call.key.organization_id,
            tier=call.tier,
            cost=served.cost,
            record=served.record,
            billable=served.billable,
            outcome_unknown=isinstance(error, QuotaOutcomeUnknownError),
        )


def _rate_limit_headers(response: HttpResponse, decision: Decision) -> HttpResponse:
    response["X-RateLimit-Limit"] = str(decision.limit)
    response["X-RateLimit-Remaining"] = str(decision.remaining)
    response["X-RateLimit-Reset"] = str(decision.reset_seconds)
    return response


def _error_answer(
    call: ApiCall, error: ApplicationError, *, methods: tuple[str, ...], body: ErrorBody = v1_error_body
) -> HttpResponse:
    if call.key is not None:
        # The error answer does not depend on its record, so Redis trouble here is not the caller's.
        with contextlib.suppress(redis.RedisError):
            querylog_append(call.new_record(status=error.status, error_code=error.code))
    response = error_response(error, body=body)
    if isinstance(error, MethodNotAllowedError):
        response["Allow"] = ", ".join(methods)
    return response


def _key_in_url(request: HttpRequest) -> bool:
    """Whether the URL carries an API key: in the query string (percent-encoded or not) or in the path, which
    arrives decoded. Such a key is in proxies' and browsers' histories, so the call is refused, never served."""
    prefix = settings.API_KEY_PREFIX
    return prefix in unquote_plus(request.META.get("QUERY_STRING", "")) or prefix in request.path_info


def api_endpoint(
    *, endpoint: str, methods: tuple[str, ...], route: str = "", error_body: ErrorBody = v1_error_body
) -> Callable:
    """Method check, authentication, quota, the JSON error shape (`error_body`: /v1's by default), a query-log
    record for every authenticated call (as `endpoint`), and the call counted in the metrics (as `route`, by
    default the endpoint). A view returns `Served`; the quota decides whether it is sent."""
    route = route or endpoint

    def decorate(view: Callable) -> Callable:
        @csrf_exempt  # bearer keys, never cookies: there is no ambient credential to forge
        @wraps(view)
        def wrapper(request: HttpRequest, **kwargs) -> HttpResponse:
            call = ApiCall(request, endpoint)
            response = _answer(view, request, call, kwargs, methods=methods, error_body=error_body)
            api_call_observed(
                route=route,
                model=call.model_slug,
                tier=call.key.tier_code if call.key is not None else "",
                status=response.status_code,
                seconds=time.perf_counter() - call.started,
                predictions=call.predictions,
                refused_window=call.refused_window,
            )
            return response

        return wrapper

    return decorate


def _answer(
    view: Callable,
    request: HttpRequest,
    call: ApiCall,
    kwargs: dict,
    *,
    methods: tuple[str, ...],
    error_body: ErrorBody,
) -> HttpResponse:
    try:
        if _key_in_url(request):
            raise InvalidInputError(
                "Send the API key in the Authorization header, never in the URL. Treat this key as "
                "exposed and roll it in the portal."
            )
        # The key first: a frozen key gets 403 on every endpoint, whatever else is wrong.
        call.key = apikey_context(raw_key=bearer_token(request.META.get("HTTP_AUTHORIZATION", "")))
        if request.method not in methods:
            raise MethodNotAllowedError(f"Use {' or '.join(methods)} on this endpoint.")
        call.tier = tier_snapshot(code=call.key.tier_code)
        served = view(request, call, **kwargs)
        served.record.latency_us = int((time.perf_counter() - call.started) * 1_000_000)
        decision = _admit(call, served)
        if decision.spend_capped:
            return error_response(
                SpendCapReachedError(
                    "Your organization has reached its monthly spend cap. An owner can raise it on the "
                    "billing page; it resets when the billing period ends."
                ),
                body=error_body,
            )
        if not decision.admitted:
            words = _WINDOW_WORDS.get(decision.window, "a rate limit")
            response = error_response(
                RateLimitedError(f"You have reached {words}. Retry after {decision.retry_after} seconds."),
                body=error_body,
            )
            response["Retry-After"] = str(decision.retry_after)
            call.refused_window = decision.window
            return _rate_limit_headers(response, decision)
        if served.billable:
            call.predictions = served.cost
        response = _rate_limit_headers(served.response, decision)
        response["X-Request-Id"] = served.record.request_id
        return response
    except ApplicationError as error:
        return _error_answer(call, error, methods=methods, body=error_body)
    except DATABASE_UNAVAILABLE_ERRORS:
        # PostgreSQL is away and this call needed it (a key this process has never seen, the usage): 503
        # with Retry-After at once, like Redis trouble, never a 500 page.
        logger.warning("PostgreSQL is unavailable; %s answered 503", call.endpoint)
        unavailable = ServiceUnavailableError("The service is briefly unavailable. Retry in a few seconds.")
        return _error_answer(call, unavailable, methods=methods, body=error_body)
    except redis.RedisError:
        return error_response(
            ServiceUnavailableError("The service is briefly unavailable. Retry in a few seconds."), body=error_body
        )


_JSON_ONLY = frozenset({"application/json"})


def read_body(
    request: HttpRequest,
    *,
    content_types: frozenset[str] = _JSON_ONLY,
    media_message: str = "Send the body as JSON with 'Content-Type: application/json'.",
) -> bytes:
    """The request's body, at most `API_MAX_BODY_BYTES`, when its media type is one of `content_types` ("" stands
    for none given); else UnsupportedMediaTypeError or PayloadTooLargeError."""
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type not in content_types:
        raise UnsupportedMediaTypeError(media_message)
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    limit = settings.API_MAX_BODY_BYTES
    if length > limit:
        raise PayloadTooLargeError(f"The request body is larger than {limit // 1024} KiB.")
    body = request.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLargeError(f"The request body is larger than {limit // 1024} KiB.")
    return body


_defense_configs: dict[bytes, DefenseConfig] = {}


def _defense_config(tier: TierSnapshot) -> DefenseConfig:
    """The tier's validated defenses, built once per distinct setting rather than per request."""
    fingerprint = orjson.dumps(tier.defenses, option=orjson.OPT_SORT_KEYS)
    config = _defense_configs.get(fingerprint)
    if config is None:
        config = DefenseConfig.from_dict(tier.defenses) if tier.defenses else DefenseConfig.none()
        _defense_configs[fingerprint] = config
    return config


def served_model(call: ApiCall, slug: str) -> ServingModel:
    """The model `slug` as the call's tier is served it, or ModelNotFoundError."""
    model = serving_model(slug=slug, variant=call.tier.model_variant)
    if model is None:
        raise ModelNotFoundError(f"There is no model '{slug[:64]}'. GET /v1/models lists the models you can use.")
    call.model_slug = model.slug
    return model


@dataclass(frozen=True)
class AnsweredRows:
    """A batch answered through the tier's defenses, whatever the protocol: the defended answers, the query-log
    record that bills them, and which fields the caller is shown."""

    defended: list[DefendedPrediction]
    record: QueryRecord
    with_confidence: bool
    with_probabilities: bool
    restricted: bool


def answer_rows(call: ApiCall, model: ServingModel, canonical: np.ndarray) -> AnsweredRows:
    """Answer canonical rows (`InputSchema.codes`) with `model` through the tier's defenses: the one pipeline of
    /v1 predict and /v2 infer."""
    tier = call.tier
    # The model answers the canonical values: a nudge below the grid step changes nothing anywhere.
    logits = model.classifier.logits(model.schema.values(canonical))
    defended = apply_defenses(
        logits,
        canonical,
        config=_defense_config(tier),
        class_labels=model.class_labels,
        noise_secret=_NOISE_SECRET,
        watermark=model.watermark,
    )
    # A throttled organization is answered the label alone (see ApiKeyContext.restricted); its record keeps the
    # confidence the tier would have served, which the abuse jobs go on scoring.
    restricted = call.key.restricted
    record = call.new_record(status=200)
    record.model_slug, record.model_version, record.variant = model.slug, model.version, model.variant
    record.inputs = canonical.tobytes()
    record.input_row_bytes = model.schema.row_bytes
    record.labels = [item.label for item in defended]
    record.clean_labels = [item.clean_label for item in defended]
    record.confidences = [float(item.confidence) for item in defended]
    record.watermarked = [bool(item.watermarked) for item in defended]
    return AnsweredRows(
        defended=defended,
        record=record,
        with_confidence=OutputField.CONFIDENCE in tier.output_fields and not restricted,
        with_probabilities=OutputField.PROBABILITIES in tier.output_fields and not restricted,
        restricted=restricted,
    )


@api_endpoint(endpoint="predict", methods=("POST",))
def predict(request: HttpRequest, call: ApiCall, model_id: str) -> Served:
    model = served_model(call, model_id)
    schema = model.schema
    canonical = schema.codes(parse_predict_body(read_body(request), schema=schema, max_batch=call.tier.max_batch_size))
    answered = answer_rows(call, model, canonical)
    predictions = []
    for item in answered.defended:
        answer: dict = {"label": item.label}
        if answered.with_confidence:
            answer["confidence"] = item.confidence
        if not answered.restricted and item.top_k is not None and len(item.top_k) > 1:
            answer["top_k"] = [{"label": label, "confidence": conf} for label, conf in item.top_k]
        if answered.with_probabilities and item.probabilities is not None:
            answer["probabilities"] = item.probabilities
        predictions.append(answer)
    response = json_response({"model": model.slug, "version": model.version, "predictions": predictions})
    if answered.restricted:
        response["X-Moat-Answers"] = "label-only"  # says why the confidences are missing; the portal says more
    # The quota script appends the record before anything is sent: an answer without one would be unbilled.
    return Served(response=response, record=answered.record, cost=len(answered.defended), billable=True)


def model_description(model: ServingModel) -> dict:
    """A model as `GET /v1/models` lists it: today's `id`, `version`, `classes` and `input.shape/min/max` (the flat
    input's length and bounds), and beside them what the schema says of an input."""
    schema = model.schema
    low, high = schema.bounds()
    described: dict = {
        "shape": [schema.n_features],
        "min": low,
        "max": high,
        "kind": schema.kind,
        "step": schema.step_description(),
        "description": schema.describe_input(),
    }
    if schema.is_image:
        described["image"] = {
            "height": schema.height,
            "width": schema.width,
            "channels": schema.channels,
            "layout": "row by row, channel last; inputs may also be nested lists of shape "
            + "x".join(str(side) for side in schema.image_shape),
            "accepts_pictures": True,
        }
    else:
        described["features"] = [{"name": f.name, "min": f.min, "max": f.max, "step": f.step} for f in schema.features]
    return {
        "id": model.slug,
        "version": model.version,
        "classes": list(model.class_labels),
        "input": described,
        "description": model.description,
    }


@api_endpoint(endpoint="models", methods=("GET",))
def model_list(request: HttpRequest, call: ApiCall) -> Served:
    models = [model_description(model) for model in serving_models(variant=call.tier.model_variant)]
    return Served(response=json_response({"models": models}), record=call.new_record(status=200))


@api_endpoint(endpoint="usage", methods=("GET",))
def usage(request: HttpRequest, call: ApiCall) -> Served:
    tier = call.tier
    current = usage_for_organization(organization_id=call.key.organization_id, now=timezone.now())
    response = json_response(
        {
            "tier": tier.code,
            "period": {"start": current.period_start.isoformat(), "end": current.period_end.isoformat()},
            "usage": {"requests": current.requests, "predictions": current.predictions},
            "limits": {
                "requests_per_minute": tier.requests_per_minute,
                "requests_per_hour": tier.requests_per_hour,
                "requests_per_day": tier.requests_per_day,
                "monthly_included_requests": tier.monthly_included_requests,
                "overage_allowed": tier.overage_allowed,
                "max_batch_size": tier.max_batch_size,
            },
        }
    )
    return Served(response=response, record=call.new_record(status=200))
