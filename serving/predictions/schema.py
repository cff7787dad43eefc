"""The OpenAPI 3.1 description of /v1, served at /api/openapi.json.

Written as data rather than generated: the hot-path views are plain Django views (see api.py), which no schema
generator can introspect. tests/serving/test_schema.py validates the document and diffs its paths against the
URLconf, so a route cannot be added without describing it."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from serving.predictions.api import json_response

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*statuses: int) -> dict:
    descriptions = {
        400: "invalid_input: wrong shape, NaN or infinity, out-of-range values, non-numbers, an empty or too large "
        "batch, an undecodable image, or a key sent in the URL",
        401: "invalid_api_key: missing, malformed, unknown, revoked or expired key",
        403: "key_frozen, or terms_not_accepted",
        404: "model_not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        402: "spend_cap_reached: the organization's monthly spend cap is reached",
        415: "unsupported_media_type: the body must be application/json",
        429: "rate_limited (with Retry-After and X-RateLimit-* headers)",
        503: "service_unavailable (with Retry-After)",
    }
    return {
        str(status): {
            "description": descriptions[status],
            "content": {"application/json": {"schema": _ERROR}},
        }
        for status in statuses
    }


def openapi_spec() -> dict:
    """The document, with the server address from SITE_URL."""
    input_row = {
        "type": "array",
        "minItems": 64,
        "maxItems": 64,
        "items": {"type": "number", "minimum": 0, "maximum": 16},
        "description": "An 8x8 grayscale image, row by row; 0 is background, 16 is full ink.",
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Moat prediction API",
            "version": "1",
            "description": "Predictions from Moat's hosted models. Authenticate with `Authorization: Bearer <key>`. "
            "The Terms of Service forbid scraping, reverse engineering and training models on the outputs.",
        },
        "servers": [{"url": settings.SITE_URL}],
        "security": [{"bearerAuth": []}],
        "paths": {
            "/v1/models": {
                "get": {
                    "operationId": "listModels",
                    "summary": "The models your plan can call, with the version that answers",
                    "responses": {
                        "200": {
                            "description": "The models",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ModelList"}}},
                        },
                        **_errors(401, 403, 405, 429, 503),
                    },
                }
            },
            "/v1/models/{model_id}/predict": {
                "post": {
                    "operationId": "predict",
                    "summary": "Classify a batch of inputs, or one image",
                    "parameters": [
                        {
                            "name": "model_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "maxLength": 64},
                            "example": "digits",
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {
                                            "type": "object",
                                            "required": ["inputs"],
                                            "additionalProperties": False,
                                            "properties": {
                                                "inputs": {
                                                    "type": "array",
                                                    "minItems": 1,
                                                    "maxItems": 100,
                                                    "items": input_row,
                                                    "description": "1 to your plan's max batch size (at most 100).",
                                                }
                                            },
                                        },
                                        {
                                            "type": "object",
                                            "required": ["image"],
                                            "additionalProperties": False,
                                            "properties": {
                                                "image": {
                                                    "type": "string",
                                                    "format": "base64-image",
                                                    "contentEncoding": "base64",
                                                    "description": "A PNG or JPEG of one digit, any size.",
                                                }
                                            },
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "One prediction per input, in order",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/PredictionResult"}}
                            },
                        },
                        **_errors(400, 401, 402, 403, 404, 405, 413, 415, 429, 503),
                    },
                }
            },
            "/v1/usage": {
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
            },
        },
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
                                    "input": {
                                        "type": "object",
                                        "required": ["shape", "min", "max"],
                                        "properties": {
                                            "shape": {"type": "array", "items": {"type": "integer"}},
                                            "min": {"type": "number"},
                                            "max": {"type": "number"},
                                        },
                                    },
                                },
                            },
                        }
                    },
                },
                "Prediction": {
                    "type": "object",
                    "required": ["label"],
                    "properties": {
                        "label": {"type": "string"},
                        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                        "top_k": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["label", "confidence"],
                                "properties": {"label": {"type": "string"}, "confidence": {"type": "number"}},
                            },
                        },
                        "probabilities": {
                            "type": "array",
                            "items": {"type": "number"},
                            "description": "Enterprise plans only: every class's probability, in class order.",
                        },
                    },
                },
                "PredictionResult": {
                    "type": "object",
                    "required": ["model", "version", "predictions"],
                    "properties": {
                        "model": {"type": "string"},
                        "version": {"type": "string"},
                        "predictions": {"type": "array", "items": {"$ref": "#/components/schemas/Prediction"}},
                    },
                },
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
    return json_response(openapi_spec())
