"""The OIP metadata documents: the server's, and a model's inputs and outputs from its `Signature`."""

from __future__ import annotations

from typing import Any

from foretell.core.schema import Signature

_FEATURE_DATATYPES = {
    "float64": "FP64",
    "float32": "FP32",
    "int64": "INT64",
    "int32": "INT32",
    "bool": "BOOL",
    "string": "BYTES",
    "category": "BYTES",
}


SERVER_NAME = "foretell"
"""The server's name in OIP server metadata, over REST and gRPC alike."""


def server_metadata(name: str, version: str, extensions: list[str]) -> dict[str, Any]:
    return {"name": name, "version": version, "extensions": list(extensions)}


def model_metadata(name: str, versions: list[str], platform: str, signature: Signature) -> dict[str, Any]:
    """OIP model metadata: one tensor per feature, -1 for the batch dimension.

    Categories and classes ride along in `parameters` (MLServer's metadata tensors carry
    parameters too), so a client can build valid requests and read `proba` columns.
    """
    inputs = []
    for feature in signature.inputs:
        entry: dict[str, Any] = {
            "name": feature.name,
            "datatype": _FEATURE_DATATYPES[feature.dtype],
            "shape": [-1, *feature.shape],
        }
        if feature.categories is not None:
            entry["parameters"] = {"categories": list(feature.categories)}
        inputs.append(entry)
    outputs = []
    for output in signature.outputs:
        per_row: list[int] = list(output.shape)
        if output.kind in ("topk_items", "topk_scores"):
            per_row = per_row or [-1]  # k is chosen per request when the signature does not fix it
        out: dict[str, Any] = {
            "name": output.name,
            "datatype": _FEATURE_DATATYPES[output.dtype],
            "shape": [-1, *per_row],
        }
        if output.classes is not None:
            out["parameters"] = {"classes": list(output.classes)}
        outputs.append(out)
    return {"name": name, "versions": list(versions), "platform": platform, "inputs": inputs, "outputs": outputs}
