"""Decoding an infer request: bytes (and the header's JSON length) in, `InferRequest` out.

Requests come as JSON, optionally followed in the same body by raw tensor bytes (Triton's
binary tensor extension, which `tritonclient` uses by default): the JSON header's length is
then sent in `Inference-Header-Content-Length`, each binary input says its byte count in
`parameters.binary_data_size`, and the raw parts follow in input order, little-endian, with
BYTES elements as a 4-byte little-endian length and then the bytes.

Anything a client can send is checked here or in the parts this module calls, and every way
a body can be wrong becomes one `ProtocolError` whose message names the tensor, the field and
what was expected. The parts: `json_data` (JSON tensor data, one tensor at a time),
`binary_data` (the raw bytes after the JSON header), `bulk_inputs` (many tensors of one shape
at once, the common form) and `outputs` (the outputs asked for, and parameters).

Decisions worth knowing:
- JSON has no NaN or infinity. Requests may send `null` in FP16/FP32/FP64 data to mean a
  missing value (NaN); no other datatype accepts `null` (see `json_data`).
- `parameters.timeout` follows Triton and tritonclient: microseconds, a non-negative number.
  0 means "no deadline", as in Triton.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from foretell.errors import ProtocolError
from foretell.protocols.oip.binary_data import _NO_BINARY_PART, _binary_values, _BinaryPart
from foretell.protocols.oip.bulk_inputs import _plain_inputs
from foretell.protocols.oip.json_data import _all_sizes, _json_values
from foretell.protocols.oip.outputs import _decode_outputs, _no_repeats, _parameters
from foretell.protocols.oip.tensors import (
    BINARY_HEADER,
    DATATYPES,
    MAX_DIMS,
    RequestedOutput,
    Tensor,
    TensorBlock,
    _kind,
    _short,
)

_MAX_KEY = 200  # characters of an entity id in parameters.key, as for event ids


class InferRequest:
    """A decoded infer request: its id (echoed in the response), input tensors, outputs asked for."""

    __slots__ = ("_inputs", "blocks", "id", "outputs", "parameters")

    def __init__(
        self,
        id: str | None,
        inputs: list[Tensor] | Callable[[], list[Tensor]],
        outputs: list[RequestedOutput] | None,
        parameters: dict[str, Any] | None = None,
        blocks: list[TensorBlock] | None = None,
    ) -> None:
        self.id = id
        self._inputs = inputs
        self.outputs = outputs
        """None when the client named no outputs: every output is returned."""
        self.parameters = {} if parameters is None else parameters
        self.blocks = blocks
        """The inputs again as one block per datatype, when they were decoded in bulk: all of one shape."""

    @property
    def inputs(self) -> list[Tensor]:
        """The input tensors, in request order (made on first use when the blocks were decoded in bulk)."""
        if callable(self._inputs):
            self._inputs = self._inputs()
        return self._inputs

    @property
    def timeout_seconds(self) -> float | None:
        """The client's deadline from `parameters.timeout` (microseconds, Triton's unit); 0 means none."""
        timeout = self.parameters.get("timeout")
        return timeout / 1e6 if timeout else None

    @property
    def binary_output_default(self) -> bool:
        """`parameters.binary_data_output`: tritonclient sets it when it names no outputs."""
        return self.parameters.get("binary_data_output") is True

    @property
    def keys(self) -> list[str] | None:
        """`parameters.key`: the entity each row is about (one id for a one-row request), as text; None if not given."""
        key = self.parameters.get("key")
        if key is None:
            return None
        return [str(k) for k in key] if type(key) is list else [str(key)]

    def select_outputs(self, available: Iterable[str]) -> tuple[list[str], set[str]]:
        """The output names to return, in order, and those to send as binary data.

        A requested name the model does not have is a client mistake, said as such.
        """
        names = list(available)
        if self.outputs is None:
            return names, set(names) if self.binary_output_default else set()
        unknown = [o.name for o in self.outputs if o.name not in names]
        if unknown:
            raise ProtocolError(f"unknown output(s) {unknown} requested; this model's outputs are {names}")
        return [o.name for o in self.outputs], {o.name for o in self.outputs if o.binary}


# -- decoding a request ----------------------------------------------------------------------------


def parse_header_length(value: str | None) -> int | None:
    """The `Inference-Header-Content-Length` header's text → `json_length` for `decode_infer_request`."""
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit() or not text.isascii():
        raise ProtocolError(f"{BINARY_HEADER} must be a non-negative integer, got {value[:40]!r}")
    return int(text)


def decode_infer_request(body: bytes, json_length: int | None = None) -> InferRequest:
    """Bytes of an infer request → `InferRequest`, or `ProtocolError` saying what is wrong.

    `json_length` is the `Inference-Header-Content-Length` value: the JSON header's size when
    binary tensor data follows it; None means the whole body is JSON.
    """
    header: bytes | memoryview = body
    binary = _NO_BINARY_PART
    if json_length is not None:
        if type(json_length) is not int or not 0 <= json_length <= len(body):
            raise ProtocolError(f"{BINARY_HEADER} is {json_length!r} but the body has {len(body)} bytes")
        view = memoryview(body)  # slices without copying the tensor bytes
        header, binary = view[:json_length], _BinaryPart(view[json_length:], announced=True)
    try:
        document = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        where = "the request body" if json_length is None else f"the JSON header (first {json_length} bytes)"
        raise ProtocolError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ProtocolError(f"an inference request is a JSON object, got {_kind(document)}")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError(f"request 'id' must be a string, got {_kind(request_id)}")
    parameters = _parameters(document, "request")
    check_request_parameters(parameters)
    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ProtocolError(f"request 'inputs' must be a non-empty list of tensors, got {_kind(raw_inputs)}")
    bulk = _plain_inputs(raw_inputs, binary) if len(raw_inputs) > 1 else None
    inputs: list[Tensor] | Callable[[], list[Tensor]]
    names: list[str] | None
    if bulk is None:
        decoded = [_decode_input(i, raw, binary) for i, raw in enumerate(raw_inputs)]
        inputs, blocks, names = decoded, None, [t.name for t in decoded]
    else:
        inputs, blocks, names = bulk
    binary.finish()
    if names is not None:  # None: a remembered structure, whose names were found distinct when it was first seen
        _no_repeats(names, "input")
    outputs = _decode_outputs(document.get("outputs"), parameters.get("binary_data_output") is True)
    return InferRequest(request_id, inputs, outputs, parameters, blocks)


def check_request_parameters(parameters: dict[str, Any]) -> None:
    """A request's `timeout`, `binary_data_output` and `key` parameters: one rule, whichever transport."""
    timeout = parameters.get("timeout")
    if timeout is not None and (type(timeout) not in (int, float) or not math.isfinite(timeout) or timeout < 0):
        raise ProtocolError(
            f"request parameter 'timeout' must be a non-negative number of microseconds, got {_short(timeout)}"
        )
    flag = parameters.get("binary_data_output")
    if flag is not None and type(flag) is not bool:
        raise ProtocolError(f"request parameter 'binary_data_output' must be true or false, got {_short(flag)}")
    key = parameters.get("key")
    if key is not None and not (_is_key(key) or (type(key) is list and key and all(_is_key(k) for k in key))):
        raise ProtocolError(
            "request parameter 'key' must be an entity id (a non-empty string or a whole number), "
            f"or a list of one per row, got {_short(key)}"
        )


def _is_key(value: Any) -> bool:
    return (type(value) is str and value != "" and len(value) <= _MAX_KEY) or type(value) is int


def _decode_input(position: int, raw: Any, binary: _BinaryPart) -> Tensor:
    if not isinstance(raw, dict):
        raise ProtocolError(f"inputs[{position}] must be a JSON object, got {_kind(raw)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ProtocolError(f"inputs[{position}]: 'name' must be a non-empty string, got {_short(name)}")
    datatype = raw.get("datatype")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        hint = " (BF16 is not supported: send FP32)" if datatype == "BF16" else ""
        raise ProtocolError(
            f"input {name!r}: unknown 'datatype' {_short(datatype)}{hint}; expected one of {', '.join(DATATYPES)}"
        )
    shape = raw.get("shape")
    if type(shape) is not list or len(shape) > MAX_DIMS or not _all_sizes(shape):
        raise ProtocolError(
            f"input {name!r}: 'shape' must be a list of at most {MAX_DIMS} non-negative integers, got {_short(shape)}"
        )
    parameters = raw.get("parameters")
    if parameters is None:
        parameters = {}
    elif type(parameters) is not dict:
        raise ProtocolError(f"input {name!r}: 'parameters' must be a JSON object, got {_kind(parameters)}")
    elif "shared_memory_region" in parameters:
        raise ProtocolError(f"input {name!r}: shared memory is not supported; send the data in the body")
    dims = tuple(shape)
    size = parameters.get("binary_data_size")
    if size is not None:
        if type(size) is not int or size < 0:
            raise ProtocolError(
                f"input {name!r}: parameters.binary_data_size must be a non-negative integer, got {_short(size)}"
            )
        if "data" in raw:
            raise ProtocolError(f"input {name!r}: has both 'data' and parameters.binary_data_size; send one")
        flat = _binary_values(name, datatype, dims, binary.take(name, size))
    elif "data" in raw:
        flat = _json_values(name, datatype, dims, raw["data"])
    else:
        raise ProtocolError(f"input {name!r}: no 'data' and no parameters.binary_data_size")
    try:
        data = flat.reshape(dims)
    except (ValueError, OverflowError) as exc:  # numpy's own limits (dimension sizes), after our count check passed
        raise ProtocolError(f"input {name!r}: shape {list(dims)} cannot be held: {exc}") from None
    return Tensor(name, datatype, dims, data, parameters)
