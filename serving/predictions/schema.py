"""The OpenAPI 3.1 description of /v1 and /v2, served at /api/openapi.json, written from the registry.

Written as data rather than generated: the hot-path views are plain Django views (see api.py), which no schema
generator can introspect. Every active model gets its own predict path, `/v1/models/<id>/predict`, whose body and
answer are described from the model's input schema and classes, with an example body from its reference data, so
that a client (or a fuzzer) knows exactly what each model takes; no text is written per model.
tests/serving/predictions/test_schema.py validates the document and diffs its paths against the URLconf, with the
model id filled in for every served model, so a route cannot be added without describing it."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from core.db import DATABASE_UNAVAILABLE_ERRORS
from serving.predictions.api import json_response
from serving.predictions.runtime import ServingModel, serving_models
from serving.predictions.schema_errors import error_responses
from serving.predictions.schema_v2 import v2_paths, v2_schemas
from tiers.models import MAX_BATCH_LIMIT, ModelVariant

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*statuses: int) -> dict:
    return error_responses(*statuses, schema=_ERROR)


def served_models() -> list[ServingModel]:
    """Every model some tier is served, once (its full version's description; the schema is the model's)."""
    found: dict[str, ServingModel] = {}
    for variant in (ModelVariant.FULL, ModelVariant.DEFENDED):
        for model in serving_models(variant=variant):
            found.setdefault(model.slug, model)
    return [found[slug] for slug in sorted(found)]


def _component_name(model: ServingModel) -> str:
    return "".join(part.capitalize() for part in model.slug.replace("_", "-").split("-"))


def _predict_body(model: ServingModel) -> dict:
    schema = model.schema
    inputs = {
        "type": "object",
        "required": ["inputs"],
        "additionalProperties": False,
        "properties": {
            "inputs": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH_LIMIT,
                "items": schema.row_json_schema(),
                "description": f"1 to your plan's max batch size (at most {MAX_BATCH_LIMIT}) inputs, each "
                + schema.describe_input()
                + (
                    f"; an image may also be nested lists of shape {'x'.join(map(str, schema.image_shape))}."
                    if schema.is_image
                    else "."
                ),
            }
        },
    }
    if not schema.is_image:
        return inputs
    picture = {
        "type": "object",
        "required": ["image"],
        "additionalProperties": False,
        "properties": {
            "image": {
                "type": "string",
                "format": "base64-image",
                "contentEncoding": "base64",
                "description": "A PNG or JPEG of any size, turned into one input as the model's schema says "
                f"({schema.preprocessing.fit}).",
            }
        },
    }
    return {"oneOf": [inputs, picture]}


def _prediction(model: ServingModel) -> dict:
    classes = list(model.class_labels)
    label = {"type": "string", "enum": classes}
    return {
        "type": "object",
        "required": ["label"],
        "properties": {
            "label": label,
            "confidence": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "Plans with confidences; absent while abuse detection restricts your organization"
                " (the response then says `X-Moat-Answers: label-only`).",
            },
            "top_k": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["label", "confidence"],
                    "properties": {"label": label, "confidence": {"type": "number"}},
                },
            },
            "probabilities": {
                "type": "array",
                "items": {"type": "number"},
                "minItems": len(classes),
                "maxItems": len(classes),
                "description": "Enterprise plans only: every class's probability, in the order of the classes.",
            },
        },
    }


def _predict_path(model: ServingModel) -> dict:
    name = _component_name(model)
    classes = ", ".join(model.class_labels[:10]) + (", ..." if len(model.class_labels) > 10 else "")
    return {
        "post": {
            "operationId": f"predict{name}",
            "summary": f"Classify a batch of inputs with {model.slug}"
            + (", or one picture" if model.schema.is_image else ""),
            "description": f"{model.description}\n\nClasses: {classes}. One input is {model.schema.describe_input()}.",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{name}Request"},
                        "example": {"inputs": [list(model.example_input)]},
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "One prediction per input, in order",
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}Result"}}},
                },
                **_errors(400, 401, 402, 403, 404, 405, 413, 415, 429, 503),
            },
        }
    }


def openapi_spec(models: list[ServingModel] | None = None) -> dict:
    """The document for the served models (default: every model with an active version), with the server address
    from SITE_URL."""
    models = served_models() if models is None else models
    paths: dict = {
        "/v1/models": {
            "get": {
                "operationId": "listModels",
                "summary": "The models your plan can call, with the version that answers and what an input is",
                "responses": {
                    "200": {
                        "description": "The models",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ModelList"}}},
                    },
                    **_errors(401, 403, 405, 429, 503),
                },
            }
        },
    }
    schemas: dict = {}
    for model in models:
        name = _component_name(model)
        paths[f"/v1/models/{model.slug}/predict"] = _predict_path(model)
        schemas[f"{name}Request"] = _predict_body(model)
        schemas[f"{name}Prediction"] = _prediction(model)
        schemas[f"{name}Result"] = {
            "type": "object",
            "required": ["model", "version", "predictions"],
            "properties": {
                "model": {"type": "string", "const": model.slug},
                "version": {"type": "string"},
                "predictions": {"type": "array", "items": {"$ref": f"#/components/schemas/{name}Prediction"}},
            },
        }
    paths["/v1/usage"] = {
        "get": {
            "operationId": "getUsage",
            "summary": "Your organization's usage this billing period, and its limits",
            "responses": {
                "200": {
                    "description": "Usage and limits",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Usage"}}},
                },
                **_errors(401, 403, 405, 429, 503),
            },
        }
    }
    paths.update(v2_paths(models, _component_name))
    schemas.update(v2_schemas(models, _component_name))
    bound = {"oneOf": [{"type": "number"}, {"type": "array", "items": {"type": "number"}}]}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Moat prediction API",
            "version": "1",
            "description": "Predictions from Moat's hosted models, through Moat's own /v1 API or the Open Inference "
            "Protocol (/v2, KServe's V2: Triton's and KServe's clients work against it). Authenticate with "
            "`Authorization: Bearer <key>`. The Terms of Service forbid scraping, reverse engineering and training "
            "models on the outputs.",
        },
        "servers": [{"url": settings.SITE_URL}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": f"`{settings.API_KEY_PREFIX}…`"}
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                        }
                    },
                },
                "ModelList": {
                    "type": "object",
                    "required": ["models"],
                    "properties": {
                        "models": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["id", "version", "classes", "input"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "version": {"type": "string"},
                                    "classes": {"type": "array", "items": {"type": "string"}},
                                    "description": {"type": "string"},
                                    "input": {
                                        "type": "object",
                                        "required": ["shape", "min", "max"],
                                        "properties": {
                                            "shape": {"type": "array", "items": {"type": "integer"}},
                                            "min": bound,
                                            "max": bound,
                                            "step": bound,
                                            "kind": {"type": "string", "enum": ["tabular", "image"]},
                                            "description": {"type": "string"},
                                            "features": {
                                                "type": "array",
                                                "items": {
                                                    "type": "object",
                                                    "required": ["name", "min", "max", "step"],
                                                    "properties": {
                                                        "name": {"type": "string"},
                                                        "min": {"type": "number"},
                                                        "max": {"type": "number"},
                                                        "step": {"type": "number"},
                                                    },
                                                },
                                            },
                                            "image": {
                                                "type": "object",
                                                "properties": {
                                                    "height": {"type": "integer"},
                                                    "width": {"type": "integer"},
                                                    "channels": {"type": "integer"},
                                                    "layout": {"type": "string"},
                                                    "accepts_pictures": {"type": "boolean"},
                                                },
                                            },
                                        },
                                    },
                                },
                            },
                        }
                    },
                },
                **schemas,
                "Usage": {
                    "type": "object",
                    "required": ["tier", "period", "usage", "limits"],
                    "properties": {
                        "tier": {"type": "string"},
                        "period": {
                            "type": "object",
                            "properties": {
                                "start": {"type": "string", "format": "date-time"},
                                "end": {"type": "string", "format": "date-time"},
                            },
                        },
                        "usage": {
                            "type": "object",
                            "properties": {"requests": {"type": "integer"}, "predictions": {"type": "integer"}},
                        },
                        "limits": {"type": "object", "additionalProperties": {"type": ["integer", "boolean"]}},
                    },
                },
            },
        },
    }


@require_safe
def openapi_document(request: HttpRequest) -> HttpResponse:
    try:
        return json_response(openapi_spec())
    except DATABASE_UNAVAILABLE_ERRORS:
        # The registry was never read in this process and PostgreSQL is away: say so, never a 500 page.
        response = json_response(
            {"error": {"code": "service_unavailable", "message": "Briefly unavailable. Retry in a few seconds."}},
            status=503,
        )
        response["Retry-After"] = "5"
        return response
