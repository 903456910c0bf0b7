"""The common form of a request's inputs (one tensor per feature, all of one shape) decoded in bulk.

A fast path beside `request._decode_input`: it accepts a subset of what that accepts and gives
the same tensors, and anything off its form goes back there (see `_plain_inputs`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import suppress
from itertools import chain, compress, repeat
from operator import itemgetter
from typing import Any

import numpy as np

from foretell.protocols.oip.binary_data import _BinaryPart
from foretell.protocols.oip.json_data import (
    _BOOLS,
    _DICTS,
    _FIXED_WIDTH,
    _FLOAT_LIMITS,
    _INTEGERS,
    _INTS,
    _LISTS,
    _NUMBERS,
    _TEXT,
    _all_sizes,
)
from foretell.protocols.oip.tensors import DATATYPES, MAX_DIMS, Tensor, TensorBlock

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
    size = math.prod(dims) if len(dims) <= MAX_DIMS and _all_sizes(dims) else 0
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
