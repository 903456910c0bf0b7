"""Encoding an infer response: output tensors in, body bytes and headers out.

Outputs the client asked for as binary go as raw bytes after the JSON header, as Triton's
binary tensor extension has it; the rest go as JSON data. JSON has no NaN or infinity, so
non-finite floats are written as `null` (orjson's rule); a client that needs them exactly
asks for the output in binary.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from foretell.errors import ProtocolError
from foretell.protocols.oip.tensors import _LENGTH_PREFIX, BINARY_HEADER, DATATYPES, Tensor, _bad_utf8


def encode_infer_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: list[Tensor],
    binary: set[str],
    parameters: dict[str, Any] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Output tensors → (body, headers). Outputs named in `binary` go as raw bytes after the JSON.

    `parameters` are the response's own (OIP's response-level `parameters` object), such as
    the ledger's `prediction_id`.
    """
    described: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for tensor in outputs:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": [int(d) for d in tensor.shape],
        }
        own = dict(tensor.parameters)
        if tensor.name in binary:
            blob = _to_binary(tensor)
            own["binary_data_size"] = len(blob)
            blobs.append(blob)
        else:
            entry["data"] = _to_json(tensor)
        if own:
            entry["parameters"] = own
        described.append(entry)
    document: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        document["id"] = request_id
    if parameters:
        document["parameters"] = parameters
    document["outputs"] = described
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, {"Content-Type": "application/json"}
    return b"".join([header, *blobs]), {
        "Content-Type": "application/octet-stream",
        BINARY_HEADER: str(len(header)),
    }


def _to_json(tensor: Tensor) -> Any:
    """Flat, row-major data ready for orjson: numeric arrays go as they are (NaN/inf become null)."""
    if tensor.datatype == "BYTES":
        values = tensor.data.reshape(-1).tolist()
        try:
            return [v.decode() if isinstance(v, bytes) else v if isinstance(v, str) else str(v) for v in values]
        except UnicodeDecodeError:
            raise ProtocolError(
                f"output {tensor.name!r}: BYTES element {_bad_utf8(tensor.data.reshape(-1))} is not UTF-8 text, "
                "which JSON cannot carry; request this output with parameters.binary_data = true"
            ) from None
    return np.ascontiguousarray(tensor.data, dtype=DATATYPES[tensor.datatype]).reshape(-1)


def _to_binary(tensor: Tensor) -> bytes:
    if tensor.datatype != "BYTES":
        dtype = DATATYPES[tensor.datatype].newbyteorder("<")
        return np.ascontiguousarray(tensor.data, dtype=dtype).tobytes()
    parts: list[bytes] = []
    for value in tensor.data.reshape(-1).tolist():
        raw = value if isinstance(value, bytes) else str(value).encode()
        parts += (_LENGTH_PREFIX.pack(len(raw)), raw)
    return b"".join(parts)
