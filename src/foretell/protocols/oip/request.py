"""Decoding an infer request: bytes (and the header's JSON length) in, `InferRequest` out.

Requests come as JSON, optionally followed in the same body by raw tensor bytes (Triton's
binary tensor extension, which `tritonclient` uses by default): the JSON header's length is
then sent in `Inference-Header-Content-Length`, each binary input says its byte count in
`parameters.binary_data_size`, and the raw parts follow in input order, little-endian, with
BYTES elements as a 4-byte little-endian length and then the bytes.

Anything a client can send is checked here, and every way a body can be wrong becomes one
`ProtocolError` whose message names the tensor, the field and what was expected.

Decisions worth knowing:
- JSON has no NaN or infinity. Requests may send `null` in FP16/FP32/FP64 data to mean a
  missing value (NaN); no other datatype accepts `null`.
- `parameters.timeout` follows Triton and tritonclient: microseconds, a non-negative number.
  0 means "no deadline", as in Triton.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from itertools import chain, compress, repeat
from operator import itemgetter
from typing import Any

import numpy as np
import orjson

from foretell.errors import ProtocolError
from foretell.protocols.oip.tensors import (
    _LENGTH_PREFIX,
    BINARY_HEADER,
    DATATYPES,
    RequestedOutput,
    Tensor,
    TensorBlock,
    _kind,
    _short,
)

_INTEGERS = frozenset({"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"})
_MAX_DIMS = 32  # numpy allows 64; no tabular model needs more than a handful
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
    _check_request_parameters(parameters)
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


def _check_request_parameters(parameters: dict[str, Any]) -> None:
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
    if type(shape) is not list or len(shape) > _MAX_DIMS or not _all_sizes(shape):
        raise ProtocolError(
            f"input {name!r}: 'shape' must be a list of at most {_MAX_DIMS} non-negative integers, got {_short(shape)}"
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


# Inputs in bulk --------------------------------------------------------------------------------------

_PLAIN_JSON = itemgetter("name", "datatype", "shape", "data")
_PLAIN_BINARY = itemgetter("name", "datatype", "shape", "parameters")
_BINARY_SIZE = itemgetter("binary_data_size")


class _Layout:
    """What a JSON request's structure (its inputs' names and datatypes, in order) decides, worked out once.

    Clients send the same structure again and again with other data; a request whose names
    and datatypes equal a remembered structure's skips the checks that depend only on
    them. Equal tuples of strings hold only strings (a str never equals anything else), so
    equal names and datatypes passed the same checks; the shapes are still compared and
    their elements' types checked per request (1.0 and True equal 1).
    """

    __slots__ = ("blocks", "dims", "shape", "size")

    def __init__(self, shape: list[int], blocks: list[tuple[str, tuple[str, ...], Sequence[int]]]) -> None:
        self.shape = shape
        self.dims = tuple(shape)
        self.size = math.prod(self.dims)
        # Each datatype's names and positions, and how its data are picked out of all inputs' data.
        self.blocks = [(datatype, of, at, _picker(at)) for datatype, of, at in blocks]


def _picker(at: Sequence[int]) -> Callable[[tuple[Any, ...]], Sequence[Any]] | None:
    if isinstance(at, range):
        return None  # every input
    if len(at) == 1:
        (only,) = at
        return lambda payloads: (payloads[only],)
    return itemgetter(*at)


_LAYOUTS: OrderedDict[tuple[tuple[str, ...], tuple[str, ...]], _Layout] = OrderedDict()
_MAX_LAYOUTS = 64  # a server sees a handful of structures; a client that varies them only misses


def _plain_inputs(
    raws: list[Any], binary: _BinaryPart
) -> tuple[Callable[[], list[Tensor]], list[TensorBlock], list[str] | None] | None:
    """The common form (one tensor per feature) decoded in bulk; None for anything else.

    A `tritonclient` row with named features is dozens of tensors of one shape, each an
    object of exactly name, datatype, shape and either flat data or (binary) only
    parameters.binary_data_size. Those are checked with set operations over all of them
    and converted with one numpy call per datatype: decoding them one by one costs more
    than the rest of serving the row. Anything off that form, valid or not, returns None
    and goes through `_decode_input`, which decodes it or says what is wrong; so this path
    accepts a subset of what that one accepts, and gives the same tensors.

    Besides the tensors and blocks, the input names for the caller's check that none
    repeats, or None when they come from a remembered `_Layout` (distinct already).
    """
    try:
        if set(map(len, raws)) != {4}:
            return None
        fields = _PLAIN_JSON if "data" in raws[0] else _PLAIN_BINARY
        names, datatypes, shapes, payloads = zip(*map(fields, raws), strict=True)
        layout = _LAYOUTS.get((names, datatypes)) if fields is _PLAIN_JSON else None
    except (KeyError, TypeError):  # not objects, other keys, unhashable values
        return None
    if layout is not None:
        return _remembered(layout, names, datatypes, shapes, payloads)
    try:
        if set(map(type, names)) != _TEXT or "" in names or set(map(type, shapes)) != _LISTS:
            return None
        kinds = set(datatypes)
    except TypeError:  # unhashable datatypes
        return None
    # One shape for all (1.0 and True equal 1 here: the types are checked next).
    if shapes.count(shapes[0]) != len(shapes) or not kinds <= DATATYPES.keys():
        return None
    if not set(map(type, chain.from_iterable(shapes))) <= _INTS:
        return None
    dims = tuple(shapes[0])
    size = math.prod(dims) if len(dims) <= _MAX_DIMS and _all_sizes(dims) else 0
    if not size:
        return None  # empty tensors too: numpy's limits on their dimensions are checked one by one
    blocks: list[TensorBlock] = []
    placed: list[tuple[Sequence[int], np.ndarray]] = []  # which inputs each block's rows are
    if fields is _PLAIN_BINARY:
        block = _binary_block(datatypes[0] if len(kinds) == 1 else "", payloads, size, binary)
        if block is None:
            return None
        blocks.append(TensorBlock(names, datatypes[0], dims, block))
        placed.append((range(len(names)), block))
    else:
        if set(map(type, payloads)) != _LISTS or set(map(len, payloads)) != {size}:
            return None
        for datatype in kinds:
            if len(kinds) == 1:
                at: Sequence[int] = range(len(names))
                block = _plain_block(datatype, payloads)
                of = names
            else:  # the positions of this datatype's inputs, picked out in C
                mine = list(map(datatype.__eq__, datatypes))
                at = list(compress(range(len(names)), mine))
                block = _plain_block(datatype, list(compress(payloads, mine)))
                of = tuple(compress(names, mine))
            if block is None:
                return None
            blocks.append(TensorBlock(of, datatype, dims, block))
            placed.append((at, block))
        if len(set(names)) == len(names):  # repeated names are refused by the caller, every time
            _remember(
                (names, datatypes),
                _Layout(list(dims), [(b.datatype, b.names, at) for b, (at, _) in zip(blocks, placed, strict=True)]),
            )
    # Binary inputs keep their parameters; JSON data is not held while the request waits on the model.
    sent = payloads if fields is _PLAIN_BINARY else None
    return _tensors(names, datatypes, dims, placed, sent), blocks, list(names)


def _remembered(
    layout: _Layout,
    names: tuple[str, ...],
    datatypes: tuple[str, ...],
    shapes: tuple[Any, ...],
    payloads: tuple[Any, ...],
) -> tuple[Callable[[], list[Tensor]], list[TensorBlock], None] | None:
    """`_plain_inputs` for a remembered structure: only the shapes and the data are checked."""
    if shapes.count(layout.shape) != len(shapes) or not set(map(type, chain.from_iterable(shapes))) <= _INTS:
        return None
    if set(map(type, payloads)) != _LISTS or set(map(len, payloads)) != {layout.size}:
        return None
    blocks: list[TensorBlock] = []
    placed: list[tuple[Sequence[int], np.ndarray]] = []
    for datatype, of, at, pick in layout.blocks:
        block = _plain_block(datatype, payloads if pick is None else pick(payloads))
        if block is None:
            return None
        blocks.append(TensorBlock(of, datatype, layout.dims, block))
        placed.append((at, block))
    with suppress(KeyError):  # another thread may have let it go meanwhile
        _LAYOUTS.move_to_end((names, datatypes))
    return _tensors(names, datatypes, layout.dims, placed, None), blocks, None


def _remember(key: tuple[tuple[str, ...], tuple[str, ...]], layout: _Layout) -> None:
    _LAYOUTS[key] = layout
    while len(_LAYOUTS) > _MAX_LAYOUTS:
        _LAYOUTS.popitem(last=False)


def _tensors(
    names: tuple[str, ...],
    datatypes: tuple[str, ...],
    dims: tuple[int, ...],
    placed: list[tuple[Sequence[int], np.ndarray]],
    sent: tuple[Any, ...] | None,
) -> Callable[[], list[Tensor]]:
    def tensors() -> list[Tensor]:  # made only if asked for: a model fed from the blocks never is
        rows: list[Any] = [None] * len(names)
        for at, block in placed:
            for i, row in zip(at, block, strict=True):
                rows[i] = row if len(dims) == 1 else row.reshape(dims)
        parameters = sent if sent is not None else [{} for _ in names]
        return list(map(Tensor, names, datatypes, repeat(dims), rows, parameters))

    return tensors


def _binary_block(datatype: str, parameters: tuple[Any, ...], size: int, binary: _BinaryPart) -> np.ndarray | None:
    """Numeric tensors of one datatype and shape, sent back to back as binary data → one array, a row each."""
    if datatype not in _FIXED_WIDTH:
        return None  # several datatypes, BYTES (length-prefixed) or BOOL (0/1 checked)
    try:
        if set(map(type, parameters)) != _DICTS or set(map(len, parameters)) != {1}:
            return None
        sizes = list(map(_BINARY_SIZE, parameters))
    except KeyError:
        return None
    dtype = DATATYPES[datatype]
    total = len(parameters) * size * dtype.itemsize
    if set(map(type, sizes)) != _INTS or set(sizes) != {size * dtype.itemsize} or binary.left() < total:
        return None
    raw = binary.take("", total)
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(len(parameters), size)


def _plain_block(datatype: str, datas: Sequence[list[Any]]) -> np.ndarray | None:
    """Equally long flat data of one datatype → one array, a row per tensor; None if any value needs a closer look."""
    flat = list(chain.from_iterable(datas))  # numpy reads a flat list faster than nested ones
    kinds = set(map(type, flat))
    if datatype == "BYTES":
        if not kinds <= _TEXT:
            return None
        try:
            encoded = [s.encode() for s in flat]
        except UnicodeEncodeError:
            return None
        block = np.empty(len(encoded), dtype=object)
        block[:] = encoded
        return block.reshape(len(datas), -1)
    if datatype == "BOOL":
        return np.array(datas, dtype=np.bool_) if kinds <= _BOOLS else None
    if datatype in _INTEGERS:
        if not kinds <= _INTS:
            return None
        try:
            return np.array(datas, dtype=DATATYPES[datatype])
        except OverflowError:
            return None
    if not kinds <= _NUMBERS:
        return None
    try:
        wide = np.array(flat, dtype=np.float64).reshape(len(datas), -1)
    except OverflowError:
        return None
    if datatype == "FP64":
        return wide
    if (np.abs(wide) > _FLOAT_LIMITS[datatype]).any():
        return None
    return wide.astype(DATATYPES[datatype])


def _all_sizes(shape: list[Any] | tuple[Any, ...]) -> bool:
    # A plain loop, not all() over a generator: about twice as fast for the usual one or two dims.
    for dim in shape:  # noqa: SIM110
        if type(dim) is not int or dim < 0:
            return False
    return True


# JSON values ------------------------------------------------------------------

_TEXT = frozenset({str})
_LISTS = frozenset({list})
_DICTS = frozenset({dict})
_FIXED_WIDTH = DATATYPES.keys() - {"BYTES", "BOOL"}
_BOOLS = frozenset({bool})
_INTS = frozenset({int})
_NUMBERS: frozenset[type] = frozenset({float, int, type(None)})
_FLOAT_LIMITS = {"FP16": float(np.finfo(np.float16).max), "FP32": float(np.finfo(np.float32).max)}


def _json_values(name: str, datatype: str, shape: tuple[int, ...], data: Any) -> np.ndarray:
    if not isinstance(data, list):
        raise ProtocolError(f"input {name!r}: 'data' must be a JSON array, got {_kind(data)}")
    leaves = _flatten(name, data, shape)
    expected = math.prod(shape)
    if len(leaves) != expected:
        raise ProtocolError(f"input {name!r}: shape {list(shape)} needs {expected} values, got {len(leaves)}")
    kinds = set(map(type, leaves))  # one pass over the values: a served row's check stays cheap
    if list in kinds:
        raise ProtocolError(f"input {name!r}: nested 'data' does not match shape {list(shape)}")
    dtype = DATATYPES[datatype]
    if datatype == "BYTES":
        _only(name, datatype, leaves, kinds, _TEXT, "strings")
        array = np.empty(len(leaves), dtype=object)
        try:
            array[:] = [s.encode() for s in leaves]
        except UnicodeEncodeError:
            raise ProtocolError(f"input {name!r}: BYTES data holds a string that is not valid Unicode") from None
        return array
    if datatype == "BOOL":
        _only(name, datatype, leaves, kinds, _BOOLS, "true or false")
        return np.array(leaves, dtype=dtype)
    if datatype in _INTEGERS:
        _only(name, datatype, leaves, kinds, _INTS, "whole numbers")
        try:
            return np.array(leaves, dtype=dtype)
        except OverflowError:
            info = np.iinfo(dtype)
            bad = next((v for v in leaves if not info.min <= v <= info.max), None)
            raise ProtocolError(
                f"input {name!r}: {datatype} values must be in {info.min}..{info.max}, got {_short(bad)}"
            ) from None
    # Floats: ints are fine, null is a missing value (NaN), nothing else.
    _only(name, datatype, leaves, kinds, _NUMBERS, "numbers (or null for missing)")
    try:
        wide = np.array(leaves, dtype=np.float64)
    except OverflowError:
        raise ProtocolError(f"input {name!r}: a number is too large for {datatype}") from None
    if datatype == "FP64":
        return wide
    # JSON holds no infinity, so any value past the narrow type's largest is an overflow; checked
    # up front, because np.errstate around the cast costs more than the whole decode of one row.
    if (np.abs(wide) > _FLOAT_LIMITS[datatype]).any():
        raise ProtocolError(f"input {name!r}: a number is too large for {datatype}")
    return wide.astype(dtype)


def _flatten(name: str, data: list[Any], shape: tuple[int, ...]) -> list[Any]:
    """Flat data as is; nested data must nest exactly like `shape`, level by level."""
    if not data or type(data[0]) is not list:
        return data
    items: list[Any] = [data]
    for depth, dim in enumerate(shape):
        if not all(type(item) is list and len(item) == dim for item in items):
            raise ProtocolError(
                f"input {name!r}: nested 'data' does not match shape {list(shape)}: "
                f"expected lists of {dim} values at depth {depth}"
            )
        items = list(chain.from_iterable(items))
    return items


def _only(name: str, datatype: str, leaves: list[Any], kinds: set[type], allowed: frozenset[type], words: str) -> None:
    if kinds <= allowed:
        return
    index = next(i for i, v in enumerate(leaves) if type(v) not in allowed)
    value = leaves[index]
    raise ProtocolError(
        f"input {name!r}: {datatype} data must be {words}; got {_kind(value)} {_short(value)} at position {index}"
    )


# binary values ----------------------------------------------------------------


class _BinaryPart:
    """The bytes after the JSON header, handed out to binary inputs in order."""

    __slots__ = ("_announced", "_offset", "_view")

    def __init__(self, view: memoryview, announced: bool) -> None:
        self._view = view
        self._offset = 0
        self._announced = announced

    def take(self, name: str, size: int) -> memoryview:
        left = len(self._view) - self._offset
        if size > left:
            if not self._announced:
                raise ProtocolError(
                    f"input {name!r}: parameters.binary_data_size is {size} but the request has no binary part "
                    f"(send the {BINARY_HEADER} header with the JSON header's length)"
                )
            raise ProtocolError(
                f"input {name!r}: parameters.binary_data_size is {size} but only {left} bytes of binary data are left"
            )
        start = self._offset
        self._offset += size
        return self._view[start : self._offset]

    def left(self) -> int:
        return len(self._view) - self._offset

    def finish(self) -> None:
        extra = len(self._view) - self._offset
        if extra:
            raise ProtocolError(
                f"the body has {len(self._view)} bytes after the JSON header but the inputs' "
                f"parameters.binary_data_size add up to {self._offset}"
            )


# A body without the header has no binary part; with nothing to hand out, one instance serves all.
_NO_BINARY_PART = _BinaryPart(memoryview(b""), announced=False)


def _binary_values(name: str, datatype: str, shape: tuple[int, ...], raw: memoryview) -> np.ndarray:
    expected = math.prod(shape)
    if datatype == "BYTES":
        return _binary_bytes(name, shape, expected, raw)
    dtype = DATATYPES[datatype]
    needed = expected * dtype.itemsize
    if len(raw) != needed:
        raise ProtocolError(
            f"input {name!r}: shape {list(shape)} of {datatype} needs {needed} bytes of binary data, "
            f"parameters.binary_data_size is {len(raw)}"
        )
    if datatype == "BOOL":
        octets = np.frombuffer(raw, dtype=np.uint8)
        if octets.size and octets.max() > 1:
            raise ProtocolError(f"input {name!r}: BOOL binary data must be bytes 0 or 1")
        return octets.astype(np.bool_)
    # astype copies into native order: the tensor is writable and does not pin the request body.
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype)


def _binary_bytes(name: str, shape: tuple[int, ...], expected: int, raw: memoryview) -> np.ndarray:
    values: list[bytes] = []
    offset, end = 0, len(raw)
    while offset < end:
        if offset + 4 > end or len(values) == expected:
            break
        (length,) = _LENGTH_PREFIX.unpack_from(raw, offset)
        offset += 4
        if offset + length > end:
            break
        values.append(bytes(raw[offset : offset + length]))
        offset += length
    if len(values) != expected or offset != end:
        raise ProtocolError(
            f"input {name!r}: shape {list(shape)} needs {expected} BYTES elements (each a 4-byte little-endian "
            f"length, then the bytes) filling parameters.binary_data_size = {end} bytes exactly"
        )
    array = np.empty(expected, dtype=object)
    array[:] = values
    return array


# requested outputs -------------------------------------------------------------


def _decode_outputs(raw: Any, default_binary: bool) -> list[RequestedOutput] | None:
    if raw is None or raw == []:  # an empty list names nothing: read it as "all outputs", like an absent one
        return None
    if not isinstance(raw, list):
        raise ProtocolError(f"request 'outputs' must be a list, got {_kind(raw)}")
    outputs = []
    for position, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ProtocolError(f"outputs[{position}] must be an object with a string 'name'")
        name = entry["name"]
        parameters = _parameters(entry, f"output {name!r}")
        for unsupported in ("classification", "shared_memory_region"):
            if unsupported in parameters:
                raise ProtocolError(f"output {name!r}: parameter {unsupported!r} is not supported")
        binary = parameters.get("binary_data", default_binary)
        if type(binary) is not bool:
            raise ProtocolError(f"output {name!r}: parameters.binary_data must be true or false, got {_short(binary)}")
        outputs.append(RequestedOutput(name, binary))
    _no_repeats([o.name for o in outputs], "output")
    return outputs


# -- shared by inputs and outputs ------------------------------------------------------------------


def _parameters(container: dict[str, Any], owner: str) -> dict[str, Any]:
    parameters = container.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise ProtocolError(f"{owner}: 'parameters' must be a JSON object, got {_kind(parameters)}")
    return parameters


def _no_repeats(names: list[str], what: str) -> None:
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise ProtocolError(f"{what} names repeat: {repeated}; each {what} must appear once")
