"""`ModelInferRequest` → `InferRequest`, and output tensors → `ModelInferResponse`.

Inputs come as `raw_input_contents` (what tritonclient sends) or as each tensor's typed
`contents`; either way they become the same `InferRequest` the REST decoder makes, so the
model sees the same rows and a bad input gets the same message as over REST. Outputs always go
back as `raw_output_contents`, as Triton answers: the one form every OIP client reads.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from foretell.errors import ProtocolError
from foretell.grpc.stubs.grpc_predict_v2_pb2 import (
    InferParameter,
    InferTensorContents,
    ModelInferRequest,
    ModelInferResponse,
)
from foretell.protocols.oip import (
    DATATYPES,
    MAX_DIMS,
    InferRequest,
    RequestedOutput,
    Tensor,
    check_request_parameters,
    decode_raw,
    encode_raw,
)

__all__ = ["decode_model_infer", "encode_model_infer"]

# Which repeated field of `InferTensorContents` holds each datatype (FP16 has none: raw only).
_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def decode_model_infer(message: ModelInferRequest) -> InferRequest:
    """A gRPC infer request → `InferRequest`, or `ProtocolError` naming the input and the field."""
    if not message.inputs:
        raise ProtocolError("request 'inputs' must be a non-empty list of tensors, got none")
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise ProtocolError(
            f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs; give one per input"
        )
    inputs: list[Tensor] = []
    seen: set[str] = set()
    for position, tensor in enumerate(message.inputs):
        name = tensor.name
        if not name:
            raise ProtocolError(f"inputs[{position}]: 'name' must be a non-empty string")
        if name in seen:
            raise ProtocolError(f"input {name!r} is given more than once")
        seen.add(name)
        datatype = tensor.datatype
        if datatype not in DATATYPES:
            raise ProtocolError(
                f"input {name!r}: unknown 'datatype' {datatype!r}; expected one of {', '.join(DATATYPES)}"
            )
        shape = tuple(int(d) for d in tensor.shape)
        if len(shape) > MAX_DIMS or any(d < 0 for d in shape):
            raise ProtocolError(
                f"input {name!r}: 'shape' must be a list of at most {MAX_DIMS} non-negative integers, got {list(shape)}"
            )
        if raw:
            if tensor.HasField("contents"):
                raise ProtocolError(f"input {name!r}: has both contents and raw_input_contents; send one")
            flat = decode_raw(name, datatype, shape, raw[position])
        else:
            flat = _typed_contents(name, datatype, shape, tensor.contents)
        try:
            data = flat.reshape(shape)
        except (ValueError, OverflowError) as exc:  # numpy's own limits (dimension sizes), after the count check
            raise ProtocolError(f"input {name!r}: shape {list(shape)} cannot be held: {exc}") from None
        inputs.append(Tensor(name, datatype, shape, data, _parameters(tensor.parameters)))
    outputs = [RequestedOutput(o.name, True) for o in message.outputs] or None
    parameters = _parameters(message.parameters)
    check_request_parameters(parameters)  # REST's rules and words
    return InferRequest(message.id or None, inputs, outputs, parameters)


def _typed_contents(name: str, datatype: str, shape: tuple[int, ...], contents: InferTensorContents) -> np.ndarray:
    field = _CONTENTS_FIELD.get(datatype)
    if field is None:
        raise ProtocolError(f"input {name!r}: {datatype} has no typed contents; send it in raw_input_contents")
    values = getattr(contents, field)
    expected = math.prod(shape)
    if len(values) != expected:
        raise ProtocolError(
            f"input {name!r}: shape {list(shape)} needs {expected} values in contents.{field}, got {len(values)}"
        )
    if datatype == "BYTES":
        array = np.empty(expected, dtype=object)
        array[:] = list(values)
        return array
    dtype = DATATYPES[datatype]
    try:
        # Narrow integers travel widened (INT8 in int32 contents): refuse a value the datatype cannot hold.
        wide = np.asarray(values)
        array = wide.astype(dtype)
        if dtype.kind in "iu" and wide.size and not np.array_equal(array, wide):
            raise OverflowError
    except OverflowError:
        raise ProtocolError(f"input {name!r}: contents.{field} holds a value out of range for {datatype}") from None
    return array


def _parameters(parameters: Any) -> dict[str, Any]:
    """A protobuf map of `InferParameter` → a plain dict of bool, int or str."""
    plain: dict[str, Any] = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        plain[key] = None if choice is None else getattr(parameter, choice)
    return plain


def encode_model_infer(
    model_name: str, model_version: str, request_id: str | None, outputs: list[Tensor], prediction_id: str | None
) -> ModelInferResponse:
    """Output tensors → a `ModelInferResponse` with raw contents; the ledger's id as parameter `prediction_id`."""
    response = ModelInferResponse(model_name=model_name, model_version=model_version, id=request_id or "")
    if prediction_id is not None:
        response.parameters["prediction_id"].CopyFrom(InferParameter(string_param=prediction_id))
    for tensor in outputs:
        response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=list(tensor.shape))
        response.raw_output_contents.append(encode_raw(tensor))
    return response
