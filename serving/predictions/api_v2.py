"""The Open Inference Protocol's REST routes (`/v2/...`, see `inference_protocol`) on the /v1 pipeline.

Inference goes exactly where /v1 predict goes: the Bearer key, the Terms and freeze checks, the quota (a tensor of N
rows costs N units), the tier's model variant and defenses, the query log (as "predict" calls, billed and scored
like /v1's) and billing. The tier decides the fidelity: the only version a caller can name is the one its tier is
served (any other is 404), and its outputs are the tier's /v1 fields. Errors keep the protocol's
`{"error": "<message>"}` with Moat's `code` beside it, under /v1's statuses and headers.

The health and server metadata routes are public (load balancers and clients probe them before they hold a key);
they say nothing of the models or of the software.
"""

import time
from collections.abc import Callable
from functools import wraps

import redis
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from core.db import DATABASE_UNAVAILABLE_ERRORS
from core.errors import ApplicationError
from core.redis import redis_client
from monitoring.metrics import api_call_observed
from serving.predictions import inference_protocol as protocol
from serving.predictions.api import (
    ApiCall,
    Served,
    answer_rows,
    api_endpoint,
    error_response,
    json_response,
    read_body,
    served_model,
)
from serving.predictions.errors import MethodNotAllowedError, ModelNotFoundError, UnsupportedMediaTypeError
from serving.predictions.runtime import ServingModel, serving_models
from serving.predictions.validation import check_values
from tiers.models import ModelVariant, OutputField

# The protocol's JSON, or the binary extension's JSON header with raw tensor bytes (Triton's client sends no type).
_INFER_CONTENT_TYPES = frozenset({"", "application/json", "application/octet-stream"})
_INFER_MEDIA_MESSAGE = (
    "Send the inference request as JSON ('Content-Type: application/json'), or as the binary tensor data "
    "extension's JSON header followed by the tensor bytes."
)


def oip_error_body(error: ApplicationError) -> dict:
    """The protocol's error object, `{"error": "<message>"}`, with Moat's stable `code` beside it."""
    return {"error": error.message, "code": error.code}


def _public_endpoint(route: str) -> Callable:
    """A keyless GET route: the protocol's error shape for any other method, and the call counted in the metrics."""

    def decorate(view: Callable) -> Callable:
        @csrf_exempt  # no cookie is read: nothing to forge
        @wraps(view)
        def wrapper(request: HttpRequest) -> HttpResponse:
            started = time.perf_counter()
            if request.method in ("GET", "HEAD"):
                response = view(request)
            else:
                response = error_response(MethodNotAllowedError("Use GET on this endpoint."), body=oip_error_body)
                response["Allow"] = "GET, HEAD"
            api_call_observed(route=route, model="", tier="", status=response.status_code,
                              seconds=time.perf_counter() - started, predictions=0, refused_window="")  # fmt: skip
            return response

        return wrapper

    return decorate


@_public_endpoint("v2_server_live")
def server_live(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers."""
    return json_response({"live": True})


@_public_endpoint("v2_server_ready")
def server_ready(request: HttpRequest) -> HttpResponse:
    """Readiness: this process serves at least one model and reaches Redis (quotas and the query log need it)."""
    try:
        # Any variant lists every served model (a model lacking it is served its other one).
        ready = bool(redis_client().ping()) and bool(serving_models(variant=ModelVariant.FULL))
    except (redis.RedisError, *DATABASE_UNAVAILABLE_ERRORS):
        ready = False
    return json_response({"ready": ready}, status=200 if ready else 503)


@_public_endpoint("v2_server_metadata")
def server_metadata(request: HttpRequest) -> HttpResponse:
    """The server: its name, the protocol revision it speaks (no software version) and its extensions."""
    return json_response({"name": "moat", "version": "2", "extensions": list(protocol.EXTENSIONS)})


def _tier_model(call: ApiCall, model_name: str, version: str | None) -> ServingModel:
    model = served_model(call, model_name)
    if version is not None and version != model.version:
        raise ModelNotFoundError(
            f"Model '{model.slug}' has no version '{version[:64]}' for your plan; your plan is served version "
            f"{model.version}."
        )
    return model


def _outputs(call: ApiCall, model: ServingModel) -> list[dict]:
    fields = call.tier.output_fields
    return protocol.served_outputs(
        with_confidence=OutputField.CONFIDENCE in fields,
        with_probabilities=OutputField.PROBABILITIES in fields,
        n_classes=len(model.class_labels),
    )


@api_endpoint(endpoint="v2_model_metadata", methods=("GET",), error_body=oip_error_body)
def model_metadata(request: HttpRequest, call: ApiCall, model_name: str, version: str | None = None) -> Served:
    model = _tier_model(call, model_name, version)
    body = protocol.model_metadata(
        name=model.slug, version=model.version, schema=model.schema, outputs=_outputs(call, model)
    )
    return Served(response=json_response(body), record=call.new_record(status=200))


@api_endpoint(endpoint="v2_model_ready", methods=("GET",), error_body=oip_error_body)
def model_ready(request: HttpRequest, call: ApiCall, model_name: str, version: str | None = None) -> Served:
    model = _tier_model(call, model_name, version)
    return Served(response=json_response({"name": model.slug, "ready": True}), record=call.new_record(status=200))


# Logged as "predict" calls, errors included: billing, the abuse jobs and the console read both protocols alike.
@api_endpoint(endpoint="predict", methods=("POST",), route="v2_infer", error_body=oip_error_body)
def infer(request: HttpRequest, call: ApiCall, model_name: str, version: str | None = None) -> Served:
    model = _tier_model(call, model_name, version)
    if request.META.get("HTTP_CONTENT_ENCODING", "identity").strip().lower() not in ("", "identity"):
        raise UnsupportedMediaTypeError("Send the inference request uncompressed (no Content-Encoding).")
    body = read_body(request, content_types=_INFER_CONTENT_TYPES, media_message=_INFER_MEDIA_MESSAGE)
    served_outputs = [output["name"] for output in _outputs(call, model)]
    parsed = protocol.parse_infer_request(
        body,
        header_length=request.META.get("HTTP_INFERENCE_HEADER_CONTENT_LENGTH"),
        schema=model.schema,
        max_batch=call.tier.max_batch_size,
        served_output_names=served_outputs,
    )
    canonical = model.schema.codes(check_values(parsed.rows, schema=model.schema))
    answered = answer_rows(call, model, canonical)
    if answered.restricted:  # a throttled organization is answered the label alone, whatever it asked (as on /v1)
        requested = (protocol.RequestedOutput(name=protocol.OUTPUT_LABEL),)
    else:
        requested = parsed.outputs or tuple(protocol.RequestedOutput(name=name) for name in served_outputs)
    outputs = protocol.output_tensors(
        answered.defended,
        outputs=requested,
        class_labels=model.class_labels,
        with_confidence=answered.with_confidence,
        with_probabilities=answered.with_probabilities,
    )
    payload: dict = {"model_name": model.slug, "model_version": model.version, "outputs": outputs}
    if parsed.request_id is not None:
        payload["id"] = parsed.request_id
    if answered.restricted:
        payload["parameters"] = {"answers": "label-only"}
    response = json_response(payload)
    if answered.restricted:
        response["X-Moat-Answers"] = "label-only"
    return Served(response=response, record=answered.record, cost=len(answered.defended), billable=True)
