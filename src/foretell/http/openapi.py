"""The OpenAPI 3.1 description of the server's routes, served at /openapi.json."""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_TENSOR = {
    "type": "object",
    "required": ["name", "datatype", "shape", "data"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {
            "type": "string",
            "enum": [
                "BOOL",
                "UINT8",
                "UINT16",
                "UINT32",
                "UINT64",
                "INT8",
                "INT16",
                "INT32",
                "INT64",
                "FP16",
                "FP32",
                "FP64",
                "BYTES",
            ],
        },
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "data": {"type": "array"},
        "parameters": {"type": "object"},
    },
}
_INFER_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "items": _TENSOR},
        "outputs": {
            "type": "array",
            "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
        },
    },
}
_INFER_RESPONSE = {
    "type": "object",
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "id": {"type": "string"},
        "parameters": {
            "type": "object",
            "properties": {"prediction_id": {"type": "string", "description": "the ledger's id for this request"}},
        },
        "outputs": {"type": "array", "items": _TENSOR},
    },
}
_PREDICTION_ID = {
    "X-Prediction-Id": {
        "description": "The ledger's id for the request's predictions (absent when the server keeps no ledger)",
        "schema": {"type": "string"},
    },
    "X-Model-Version": {
        "description": "The version that answered: during a canary rollout, the champion's or the challenger's",
        "schema": {"type": "string"},
    },
}
_INVOCATIONS = {
    "type": "object",
    "properties": {
        "dataframe_split": {"type": "object"},
        "dataframe_records": {"type": "array", "items": {"type": "object"}},
        "instances": {"type": "array"},
        "inputs": {},
    },
}


_LOOKUP = {
    "type": "object",
    "required": ["model", "key", "source", "prediction", "model_version", "computed_at"],
    "properties": {
        "model": {"type": "string"},
        "key": {"type": "string"},
        "source": {"type": "string", "enum": ["precomputed", "live"]},
        "prediction": {"type": "object"},
        "model_version": {"type": "integer"},
        "computed_at": {"type": "string", "format": "date-time"},
        "generation": {"type": ["integer", "null"]},
        "age_seconds": {"type": "number"},
        "stale": {"type": "boolean"},
        "prediction_id": {"type": "string", "description": "the ledger's id for this answer"},
    },
}
_LABEL = {
    "type": "object",
    "required": ["label"],
    "description": 'by entity: {"key": "C-42", "label": 1, "observed_at": "2026-12-04T10:00:00Z"}; '
    'or by prediction: {"prediction_id": "...", "row": 0, "label": 1}',
    "properties": {
        "key": {"type": ["string", "integer"]},
        "observed_at": {"type": "string", "format": "date-time"},
        "prediction_id": {"type": "string"},
        "row": {"type": "integer", "minimum": 0},
        "label": {"type": ["number", "integer", "boolean", "string"]},
    },
}
_LABELS = {
    "type": "object",
    "required": ["model", "labels"],
    "properties": {"model": {"type": "string"}, "labels": {"oneOf": [{"type": "array", "items": _LABEL}, _LABEL]}},
}
_BATCH_GET = {
    "type": "object",
    "required": ["keys"],
    "properties": {
        "keys": {"type": "array", "items": {"type": ["string", "integer"]}, "minItems": 1, "maxItems": 10000},
        "fresh": {"type": "boolean"},
        "k": {"type": ["integer", "null"], "minimum": 1},
    },
}
_EVENT = {
    "type": "object",
    "required": ["type"],
    "description": (
        '{"type": "features", "key": ..., "values": {...}} or an interaction such as '
        '{"type": "rating", "user_id": 17, "movie_id": 3301, "rating": 5}; optional "event_id" and "entity"'
    ),
    "properties": {
        "type": {"type": "string"},
        "event_id": {"type": "string", "maxLength": 200},
        "entity": {"type": "string"},
        "key": {"type": ["string", "integer"]},
        "values": {"type": "object"},
    },
}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "error", "content": {"application/json": {"schema": _ERROR}}} for c in codes}


def _json(schema: dict[str, Any], description: str = "ok", *, prediction_id: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if prediction_id:
        answer["headers"] = _PREDICTION_ID
    return answer


def openapi_document(version: str) -> dict[str, Any]:
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    model_version = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
    infer = {
        "post": {
            "summary": "Open Inference Protocol inference (JSON, or JSON + binary tensors)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _INFER_REQUEST}}},
            "responses": {
                "200": _json(_INFER_RESPONSE, prediction_id=True),
                **_errors(400, 404, 413, 415, 500, 503, 504),
            },
        }
    }
    probe = {"get": {"responses": {"200": {"description": "ok"}, "503": {"description": "not ready"}}}}
    metadata = {"get": {"responses": {"200": _json({"type": "object"}), **_errors(404)}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "foretell", "version": version},
        "paths": {
            "/v2/health/live": probe,
            "/v2/health/ready": probe,
            "/v2": {"get": {"responses": {"200": _json({"type": "object"})}}},
            "/v2/models/{name}": {"parameters": [name], **metadata},
            "/v2/models/{name}/versions/{version}": {"parameters": [name, model_version], **metadata},
            "/v2/models/{name}/ready": {"parameters": [name], **metadata},
            "/v2/models/{name}/infer": {"parameters": [name], **infer},
            "/v2/models/{name}/versions/{version}/infer": {"parameters": [name, model_version], **infer},
            "/invocations": {
                "post": {
                    "summary": "MLflow scoring: dataframe_split, dataframe_records, instances, inputs, or text/csv",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _INVOCATIONS}}},
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {"predictions": {"type": "array"}, "prediction_id": {"type": "string"}},
                            },
                            prediction_id=True,
                        ),
                        **_errors(400, 413, 415, 500, 503, 504),
                    },
                }
            },
            "/ping": probe,
            "/health": probe,
            "/version": {"get": {"responses": {"200": {"description": "the server version"}}}},
            "/metrics": {"get": {"responses": {"200": {"description": "Prometheus text format"}}}},
            "/v1/models/{name}/predictions/{key}": {
                "parameters": [name, {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}],
                "get": {
                    "summary": "The stored prediction for a key while fresh, else a live one (written back)",
                    "parameters": [
                        {"name": "fresh", "in": "query", "schema": {"type": "boolean"}},
                        {"name": "k", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                    ],
                    "responses": {"200": _json(_LOOKUP, prediction_id=True), **_errors(400, 404, 500, 503, 504)},
                },
            },
            "/v1/models/{name}/predictions:batchGet": {
                "parameters": [name],
                "post": {
                    "summary": "Lookups for many keys; live predictions for the misses run as one batch",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _BATCH_GET}}},
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "predictions": {"type": "array", "items": _LOOKUP},
                                    "missing": {"type": "array", "items": {"type": "string"}},
                                },
                            }
                        ),
                        **_errors(400, 404, 413, 500, 503, 504),
                    },
                },
            },
            "/v1/events": {
                "post": {
                    "summary": "Apply an event to an entity and refresh its predictions before answering",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _EVENT}}},
                    "responses": {
                        "200": _json({"type": "object"}, prediction_id=True),
                        **_errors(400, 413, 500, 503, 504),
                    },
                }
            },
            "/v1/labels": {
                "post": {
                    "summary": "Outcomes that arrived later, joined to the predictions in the ledger",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _LABELS}}},
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {"model": {"type": "string"}, "accepted": {"type": "integer"}},
                            }
                        ),
                        **_errors(400, 404, 413, 500),
                    },
                }
            },
        },
    }
