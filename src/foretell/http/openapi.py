"""The OpenAPI 3.1 description of the server's routes, served at /openapi.json.

Generated for the server that serves it: only the routes it answers (the `/v1` lookups and
events with a hybrid service, labels with a ledger), the models it serves as the only names
a `{name}` takes, and 401, 403 and 429 wherever a key is asked for. Each operation lists every
status it can answer, each error with the one JSON error body; `benchmarks/fuzz.py` and
`tests/integration/serving/test_fuzz_openapi.py` hold the server to it with schemathesis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from foretell.protocols.oip import DATATYPES

__all__ = ["openapi_document"]

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "what was wrong: the field, the rule and the value"}},
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "string"}}}
_WHY = {
    400: "the request breaks a rule: the error names the field, the rule and the value",
    401: "no API key, or a wrong one (`Authorization: Bearer KEY` or `X-API-Key: KEY`)",
    403: "the API key lacks the scope this route needs (predict, or events for events and labels)",
    404: "no such model, version, key or entity",
    413: "the body is over the server's max_body_bytes",
    415: "a content type this route does not read",
    429: "the API key is over its rate limit: try again after Retry-After",
    500: "the model (or the server) failed on this request; other requests are not affected",
    503: "overloaded, stopping, or a store it needs cannot be reached: try again after Retry-After",
    504: "the client's deadline passed before the model ran",
}
_LIVE = (400, 404, 413, 500, 503, 504)
"""What a route that reads a body and predicts live can answer besides 200."""
_LOOKUP_ERRORS = (400, 404, 500, 503, 504)
_KEY = {"type": ["string", "integer"], "description": "an entity id"}
_TENSOR_METADATA = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string", "enum": sorted(DATATYPES)},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": -1}},
        "parameters": {"type": "object"},
    },
}
_TENSOR = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "description": "JSON data in `data`, or binary data after the JSON header (parameters.binary_data_size)",
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string", "enum": sorted(DATATYPES)},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "data": {"type": "array"},
        "parameters": {
            "type": "object",
            "properties": {"binary_data_size": {"type": "integer", "minimum": 0}, "binary_data": {"type": "boolean"}},
        },
    },
}
_INFER_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {
            "type": "object",
            "properties": {
                "timeout": {"type": "number", "minimum": 0, "description": "the client's deadline, microseconds"},
                "binary_data_output": {"type": "boolean"},
                "key": {"oneOf": [_KEY, {"type": "array", "items": _KEY, "minItems": 1}]},
            },
        },
        "inputs": {"type": "array", "items": _TENSOR},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "parameters": {"type": "object", "properties": {"binary_data": {"type": "boolean"}}},
                },
            },
        },
    },
}
_INFER_RESPONSE = {
    "type": "object",
    "required": ["model_name", "outputs"],
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
    "description": "exactly one of dataframe_split, dataframe_records, instances or inputs (and optional params)",
    "properties": {
        "dataframe_split": {
            "type": "object",
            "properties": {"columns": {"type": "array", "items": {"type": "string"}}, "data": {"type": "array"}},
        },
        "dataframe_records": {"type": "array", "items": {"type": "object"}},
        "instances": {"type": "array"},
        "inputs": {},
        "params": {"type": "object"},
    },
}
_READY = {"type": "object", "required": ["ready"], "properties": {"ready": {"type": "boolean"}}}
_MODEL_READY = {
    "type": "object",
    "required": ["name", "ready"],
    "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
}
_PREDICTIONS = {
    "type": "object",
    "required": ["predictions"],
    "properties": {"predictions": {"type": "array"}, "prediction_id": {"type": "string"}},
}
_LOOKUP = {
    "type": "object",
    "required": ["model", "key", "source", "prediction", "model_version", "computed_at", "generation", "age_seconds"],
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
        "key": _KEY,
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
        "keys": {"type": "array", "items": _KEY, "minItems": 1, "maxItems": 10000},
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
        "key": _KEY,
        "values": {"type": "object"},
    },
}
_EVENT_ANSWER = {
    "type": "object",
    "description": "the event's outcome: the entity written, whether it was a duplicate, the predictions refreshed",
    "properties": {"duplicate": {"type": "boolean"}, "ms": {"type": "number"}},
}


class _Operations:
    """Builds operations alike: every error a JSON body, 401/403/429 where a key is asked for."""

    def __init__(self, *, api_key: bool) -> None:
        self.api_key = api_key

    def responses(self, ok: dict[str, Any], *codes: int, open_path: bool = False) -> dict[str, Any]:
        answers = {"200": ok}
        wanted = sorted({*codes, *(() if open_path or not self.api_key else (401, 403, 429))})
        for code in wanted:
            error: dict[str, Any] = {"description": _WHY[code], "content": {"application/json": {"schema": _ERROR}}}
            if code in (429, 503):
                error["headers"] = _RETRY_AFTER
            answers[str(code)] = error
        return answers

    def get(self, ok: dict[str, Any], *codes: int, summary: str, open_path: bool = False) -> dict[str, Any]:
        return {"get": {"summary": summary, "responses": self.responses(ok, *codes, open_path=open_path)}}

    def post(self, body: dict[str, Any], ok: dict[str, Any], *codes: int, summary: str) -> dict[str, Any]:
        return {"post": {"summary": summary, "requestBody": body, "responses": self.responses(ok, *codes)}}


def _json(schema: dict[str, Any], description: str = "ok", *, prediction_id: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if prediction_id:
        answer["headers"] = _PREDICTION_ID
    return answer


def _text(description: str, media_type: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


def _body(schema: dict[str, Any], **more: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}, **more}}


def openapi_document(
    version: str,
    *,
    models: Sequence[str] = (),
    versions: Sequence[str] = (),
    hybrid: bool = True,
    labels: bool = True,
    api_key: bool = False,
) -> dict[str, Any]:
    """The document for a server serving `models` at `versions`, with or without the hybrid routes, labels
    and an API key."""
    ops = _Operations(api_key=api_key)
    served = {"type": "string", "description": "a served model", **({"enum": sorted(models)} if models else {})}
    name = {"name": "name", "in": "path", "required": True, "schema": served}
    model_version = {
        "name": "version",
        "in": "path",
        "required": True,
        "schema": {
            "type": "string",
            "description": "the served version (another one is 404)",
            **({"enum": sorted(set(versions))} if versions else {}),
        },
    }
    binary = {
        "schema": {"type": "string", "format": "binary"},
        "description": "the OIP binary tensor extension: a JSON header of Inference-Header-Content-Length "
        "bytes, then each input's binary data",
    }
    infer = ops.post(
        _body(_INFER_REQUEST, **{"application/octet-stream": binary}),
        _json(_INFER_RESPONSE, "the outputs (binary ones after the JSON header)", prediction_id=True),
        *_LIVE,
        summary="Open Inference Protocol inference (JSON, or JSON + binary tensors)",
    )
    infer["post"]["parameters"] = [
        {
            "name": "Inference-Header-Content-Length",
            "in": "header",
            "required": False,
            "description": "with binary tensors: the length of the JSON header at the body's start",
            "schema": {"type": "integer", "minimum": 0},
        }
    ]
    metadata = ops.get(
        _json(
            {
                "type": "object",
                "required": ["name", "versions", "platform", "inputs", "outputs"],
                "properties": {
                    "name": {"type": "string"},
                    "versions": {"type": "array", "items": {"type": "string"}},
                    "platform": {"type": "string"},
                    "inputs": {"type": "array", "items": _TENSOR_METADATA},
                    "outputs": {"type": "array", "items": _TENSOR_METADATA},
                },
            }
        ),
        404,
        summary="Model metadata: inputs and outputs from the signature",
    )
    model_ready = ops.get(
        _json(_MODEL_READY),
        404,
        summary="Whether the model is ready",
    )
    mlflow_probe = ops.get({"description": "ready"}, 503, summary="MLflow's probe: 200 once ready", open_path=True)
    mlflow_probe["get"]["responses"]["503"] = {"description": "not ready (starting or stopping)"}
    paths: dict[str, Any] = {
        "/v2/health/live": ops.get(
            _json({"type": "object", "required": ["live"], "properties": {"live": {"type": "boolean"}}}),
            summary="Liveness: answers without touching a model",
            open_path=True,
        ),
        "/v2/health/ready": {
            "get": {
                "summary": "Readiness: false while starting and from the moment a drain begins",
                "responses": {"200": _json(_READY), "503": _json(_READY, "not ready")},
            }
        },
        "/v2": ops.get(
            _json(
                {
                    "type": "object",
                    "required": ["name", "version", "extensions"],
                    "properties": {
                        "name": {"type": "string"},
                        "version": {"type": "string"},
                        "extensions": {"type": "array", "items": {"type": "string"}},
                    },
                }
            ),
            summary="Server metadata",
        ),
        "/v2/models/{name}": {"parameters": [name], **metadata},
        "/v2/models/{name}/versions/{version}": {"parameters": [name, model_version], **metadata},
        "/v2/models/{name}/ready": {"parameters": [name], **model_ready},
        "/v2/models/{name}/versions/{version}/ready": {"parameters": [name, model_version], **model_ready},
        "/v2/models/{name}/infer": {"parameters": [name], **infer},
        "/v2/models/{name}/versions/{version}/infer": {"parameters": [name, model_version], **infer},
        "/invocations": ops.post(
            _body(_INVOCATIONS, **{"text/csv": {"schema": {"type": "string"}}}),
            _json(_PREDICTIONS, prediction_id=True),
            400,
            413,
            415,
            500,
            503,
            504,
            summary="MLflow scoring on a one-model server: dataframe_split, dataframe_records, instances, inputs, "
            "or text/csv (400 on a server with several models)",
        ),
        "/ping": mlflow_probe,
        "/health": mlflow_probe,
        "/version": ops.get(_text("the server version"), summary="The server's version (MLflow's /version)"),
        "/metrics": ops.get(
            _text("Prometheus text format", "text/plain; version=0.0.4"), summary="Prometheus metrics", open_path=True
        ),
        "/openapi.json": ops.get(_json({"type": "object"}, "this document"), summary="This document"),
    }
    if hybrid:
        paths.update(_hybrid_paths(ops, name))
    if labels:
        paths["/v1/labels"] = ops.post(
            _body(_LABELS),
            _json({"type": "object", "properties": {"model": {"type": "string"}, "accepted": {"type": "integer"}}}),
            400,
            404,
            413,
            500,
            summary="Outcomes that arrived later, joined to the predictions in the ledger",
        )
    document: dict[str, Any] = {"openapi": "3.1.0", "info": {"title": "foretell", "version": version}, "paths": paths}
    if api_key:
        document["components"] = {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
        }
        document["security"] = [{"bearer": []}, {"apiKey": []}]
    return document


def _hybrid_paths(ops: _Operations, name: dict[str, Any]) -> dict[str, Any]:
    lookup = ops.get(
        _json(_LOOKUP, prediction_id=True),
        *_LOOKUP_ERRORS,
        summary="The stored prediction for a key while fresh, else a live one (written back)",
    )
    lookup["get"]["parameters"] = [
        {"name": "fresh", "in": "query", "schema": {"type": "boolean"}, "description": "true: always predict live"},
        {"name": "k", "in": "query", "schema": {"type": "integer", "minimum": 1}, "description": "top-k size"},
    ]
    lookup["head"] = {**lookup["get"], "summary": "The same as GET, without the body"}
    key = {"name": "key", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
    return {
        "/v1/models/{name}/predictions/{key}": {"parameters": [name, key], **lookup},
        "/v1/models/{name}/predictions:batchGet": {
            "parameters": [name],
            **ops.post(
                _body(_BATCH_GET),
                _json(
                    {
                        "type": "object",
                        "required": ["predictions", "missing"],
                        "properties": {
                            "predictions": {"type": "array", "items": _LOOKUP},
                            "missing": {"type": "array", "items": {"type": "string"}},
                        },
                    }
                ),
                *_LIVE,
                summary="Lookups for many keys; live predictions for the misses run as one batch",
            ),
        },
        "/v1/events": ops.post(
            _body(_EVENT),
            _json(_EVENT_ANSWER, prediction_id=True),
            *_LIVE,
            summary="Apply an event to an entity and refresh its predictions before answering",
        ),
    }
