"""The Open Inference Protocol's routes in the OpenAPI document (`serving.predictions.schema` adds them beside /v1's),
written from each served model's schema like /v1's: its input tensor, its outputs and an example.

The infer body is described for one input (`shape` [1, n] with the input's n values, or [1, height, width(,
channels)] for an image): a JSON Schema cannot tie a batch's `shape` to its `data`'s length, and the document must
say exactly what the server accepts (the fuzzing suite checks both ways). Batches, binary tensors and the
`probabilities` output of enterprise plans are in the description."""

from serving.input_schema import InputSchema
from serving.predictions import inference_protocol as protocol
from serving.predictions.runtime import ServingModel
from serving.predictions.schema_errors import error_responses

_OIP_ERROR = {"$ref": "#/components/schemas/InferenceError"}
_PUBLIC = {"security": []}


def _errors(*statuses: int) -> dict:
    return error_responses(*statuses, schema=_OIP_ERROR)


def _tensor_shapes(schema: InputSchema) -> dict:
    shapes = [
        {
            "type": "array",
            "minItems": len(shape),
            "maxItems": len(shape),
            "prefixItems": [{"const": 1}, *({"const": side} for side in shape[1:])],
            "items": False,
        }
        for shape in protocol.input_shapes(schema)
    ]
    return shapes[0] if len(shapes) == 1 else {"oneOf": shapes}


def infer_request_schema(model: ServingModel) -> dict:
    schema = model.schema
    output = {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "enum": [protocol.OUTPUT_LABEL, protocol.OUTPUT_CONFIDENCE]},
            "parameters": {
                "type": "object",
                "properties": {
                    "classification": {"type": "integer", "minimum": 0, "description": "the k best classes"},
                    "binary_data": {"type": "boolean", "description": "ignored: outputs are JSON"},
                },
            },
        },
    }
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "description": f"'{protocol.INPUT_NAME}' (any name is read as it)"},
            "shape": _tensor_shapes(schema),
            "datatype": {"type": "string", "enum": ["FP32", "FP64"]},
            "data": schema.row_json_schema(),
            "parameters": {"type": "object", "properties": {"binary_data_size": False}},
        },
    }
    return {
        "type": "object",
        "required": ["inputs"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "minItems": 1, "maxItems": 1, "items": tensor},
            "outputs": {"type": "array", "minItems": 1, "items": output},
        },
    }


def _infer_operation(model: ServingModel, name: str, *, versioned: bool) -> dict:
    schema = model.schema
    shapes = " or ".join(str([-1, *shape[1:]]) for shape in protocol.input_shapes(schema))
    return {
        "post": {
            "operationId": f"infer{name}{'Version' if versioned else ''}",
            "summary": f"Classify inputs with {model.slug} (Open Inference Protocol)",
            "description": f"The input tensor '{protocol.INPUT_NAME}' has shape {shapes}: N inputs of "
            f"{schema.describe_input()}, N up to your plan's batch size (each costs one unit of quota, as on /v1), "
            "as JSON `data` or as binary tensor data (`Inference-Header-Content-Length`). The outputs are your "
            "plan's: `label` and `confidence`, and `probabilities` on enterprise plans; the `classification` "
            "parameter answers your plan's top-k as `<confidence>:<index>:<label>`.",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{name}InferRequest"},
                        "example": {
                            "inputs": [
                                {
                                    "name": protocol.INPUT_NAME,
                                    "shape": [1, schema.n_features],
                                    "datatype": "FP32",
                                    "data": list(model.example_input),
                                }
                            ]
                        },
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "The output tensors, one row per input",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InferResponse"}}},
                },
                **_errors(400, 401, 402, 403, 404, 405, 413, 415, 429, 503),
            },
        }
    }


def _model_operation(summary: str, operation_id: str, response_schema: str) -> dict:
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "responses": {
                "200": {
                    "description": summary,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{response_schema}"}}},
                },
                **_errors(401, 403, 404, 405, 429, 503),
            },
        }
    }


_VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "The version your plan is served (any other is 404)"}  # fmt: skip


def v2_paths(models: list[ServingModel], component_name) -> dict:
    """The /v2 paths: the public health and server routes, and each served model's metadata, ready and infer routes,
    with and without the version segment."""
    paths: dict = {
        "/v2": _public(
            "Server metadata: its name, protocol revision and extensions", "serverMetadata", "ServerMetadata"
        ),
        "/v2/health/live": _public("Liveness", "serverLive", "ServerLive"),
        "/v2/health/ready": _public("Readiness: models loaded, Redis reachable", "serverReady", "ServerReady"),
    }
    for model in models:
        name = component_name(model)
        base = f"/v2/models/{model.slug}"
        metadata = f"{model.slug}'s metadata: the version, input and outputs your plan is served"
        for suffix, versioned in (("", False), ("/versions/{version}", True)):
            tag = "Version" if versioned else ""
            paths[base + suffix] = _model_operation(metadata, f"metadata{name}{tag}", "ModelMetadata")
            paths[base + suffix + "/ready"] = _model_operation(
                f"Whether {model.slug} is ready for your plan", f"ready{name}{tag}", "ModelReady"
            )
            paths[base + suffix + "/infer"] = _infer_operation(model, name, versioned=versioned)
            if versioned:
                for path in (base + suffix, base + suffix + "/ready", base + suffix + "/infer"):
                    paths[path]["parameters"] = [_VERSION]
    return paths


def _public(summary: str, operation_id: str, response_schema: str) -> dict:
    operation = _model_operation(summary, operation_id, response_schema)
    operation["get"]["responses"] = {
        key: value for key, value in operation["get"]["responses"].items() if key in ("200", "405")
    }
    if response_schema == "ServerReady":
        operation["get"]["responses"]["503"] = {
            "description": "Not ready",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ServerReady"}}},
        }
    operation["get"].update(_PUBLIC)
    return operation


def v2_schemas(models: list[ServingModel], component_name) -> dict:
    tensor_metadata = {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
        },
    }
    schemas = {
        "InferenceError": {
            "type": "object",
            "required": ["error", "code"],
            "properties": {"error": {"type": "string"}, "code": {"type": "string"}},
        },
        "ServerMetadata": {
            "type": "object",
            "required": ["name", "version", "extensions"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "extensions": {"type": "array", "items": {"type": "string"}},
            },
        },
        "ServerLive": {"type": "object", "required": ["live"], "properties": {"live": {"type": "boolean"}}},
        "ServerReady": {"type": "object", "required": ["ready"], "properties": {"ready": {"type": "boolean"}}},
        "ModelReady": {
            "type": "object",
            "required": ["name", "ready"],
            "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
        },
        "ModelMetadata": {
            "type": "object",
            "required": ["name", "platform", "inputs", "outputs"],
            "properties": {
                "name": {"type": "string"},
                "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string"},
                "inputs": {"type": "array", "items": tensor_metadata},
                "outputs": {"type": "array", "items": tensor_metadata},
            },
        },
        "InferResponse": {
            "type": "object",
            "required": ["model_name", "outputs"],
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
                "id": {"type": "string"},
                "parameters": {"type": "object"},
                "outputs": {
                    "type": "array",
                    "items": {
                        **tensor_metadata,
                        "required": ["name", "datatype", "shape", "data"],
                        "properties": {
                            **tensor_metadata["properties"],
                            "data": {"type": "array", "items": {"type": ["string", "number"]}},
                        },
                    },
                },
            },
        },
    }
    for model in models:
        schemas[f"{component_name(model)}InferRequest"] = infer_request_schema(model)
    return schemas
