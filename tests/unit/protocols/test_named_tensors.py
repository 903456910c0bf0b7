"""One tensor per feature, decoded in bulk and built from buffers, against the paths it must agree with.

For generated requests, valid and not (NaN and infinity, unknown categories, wrong
datatypes, missing, unknown and repeated names, wrong shapes, row counts that differ,
BYTES that are not UTF-8), as JSON or as binary data:
- the bulk decoder gives the tensors (or the error) that decoding input by input gives;
- the server's path (`inputs_from_request`, then coercion) refuses exactly what the
  reference does, with the same messages and row errors, and gives the same columns when
  it accepts. The reference is the path before named tensors were built from buffers:
  decoding input by input, a pyarrow table of the tensors, coercion of the table;
- for numbers only, the rows are what one [n, features] tensor gives (the 2-D path).
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from foretell.core.columns import Columns
from foretell.core.schema import Feature, Output, Signature
from foretell.errors import InvalidInput
from foretell.protocols.oip import Tensor, bulk_inputs, decode_infer_request
from foretell.protocols.oip import rows as oip_rows
from foretell.protocols.oip.rows import inputs_from_request

FLOATS = Signature(
    (
        Feature("plan", "category", allow_missing=True, categories=("basic", "pro", "max")),
        Feature("tier", "category", categories=("gold", "silver")),
        Feature("x", "float64", allow_missing=True),
        Feature("y", "float64"),
        Feature("z", "float64", allow_missing=True, required=False),
    ),
    (Output("score", "score"),),
)
MIXED = Signature(
    (
        Feature("n", "int64"),
        Feature("s", "string", allow_missing=True),
        Feature("b", "bool"),
        Feature("f", "float32"),
        Feature("c", "category", categories=("a", "b")),
    ),
    (Output("score", "score"),),
)

TEXT = ["basic", "pro", "max", "gold", "silver", "a", "b", "", "unknown", "Zürich €"]
NOT_UTF8 = b"\xff\xfe"
NUMBERS = [0.0, 1.0, 2.0, -3.5, 1.5, 7.0, 1e30, 1e300, None]  # None: null in JSON (missing), NaN in binary
INTEGERS = [0, 1, 2, 3, -1, 255, 2**31]
FORMATS = {"FP64": "<d", "FP32": "<f", "FP16": "<e", "INT64": "<q", "INT32": "<i", "UINT8": "<B", "BOOL": "<?"}


# -- the reference: the path before ---------------------------------------------------------------


def reference_inputs(signature: Signature, tensors: list[Tensor]) -> Any:
    """`inputs_from_tensors` as it was: a pyarrow table of the tensors, BYTES decoded one by one."""
    names = signature.input_names
    if not tensors:
        raise InvalidInput(f"the request has no inputs; the model takes {names}")
    if len(tensors) == 1 and len(tensors[0].shape) == 2 and tensors[0].name not in names:
        data = tensors[0].data
        if data.dtype == object:
            data = np.vectorize(_text, otypes=[object])(data)
        return data
    by_name = {t.name: t for t in tensors}
    unknown = sorted(set(by_name) - set(names))
    missing = [f.name for f in signature.inputs if f.name not in by_name and f.required]
    if unknown or missing:
        raise InvalidInput(
            f"inputs must be one 2-D tensor with the {len(names)} features in signature order, or one tensor per "
            f"feature {names}; "
            + "; ".join(
                p for p in (f"missing {missing}" if missing else "", f"unknown {unknown}" if unknown else "") if p
            )
        )
    columns = {}
    rows = None
    for name in (n for n in names if n in by_name):
        tensor = by_name[name]
        if len(tensor.shape) == 2 and tensor.shape[1] == 1:
            data = tensor.data.reshape(-1)
        elif len(tensor.shape) == 1:
            data = tensor.data
        else:
            raise InvalidInput(f"input {name!r}: shape {list(tensor.shape)} is not [n] or [n, 1]")
        if rows is not None and len(data) != rows:
            raise InvalidInput(f"input {name!r} has {len(data)} rows, the other inputs have {rows}")
        rows = len(data)
        columns[name] = pa.array([_text(v) for v in data] if data.dtype == object else data)
    return pa.table(columns)


def _text(value: Any) -> Any:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


# -- requests --------------------------------------------------------------------------------------


@st.composite
def requests(draw: st.DrawFn, signature: Signature) -> tuple[list[dict[str, Any]], bool]:
    """Inputs as (name, datatype, shape, values), mostly right for `signature`, often wrong in one way."""
    binary = draw(st.booleans())
    n = draw(st.integers(1, 3))
    names = [f.name for f in signature.inputs]
    if draw(st.integers(0, 4)) == 0:
        names.remove(draw(st.sampled_from(names)))  # missing (or an optional feature left out)
    if draw(st.integers(0, 6)) == 0:
        names.append("unknown")
    if draw(st.integers(0, 8)) == 0:
        names.append(draw(st.sampled_from(names)))  # repeated
    names = draw(st.permutations(names)) if draw(st.integers(0, 3)) == 0 else names
    odd = draw(st.integers(0, 6))  # one input out of line for the others: its own shape
    inputs = []
    for i, name in enumerate(names):
        feature = next((f for f in signature.inputs if f.name == name), None)
        datatype = _usual_datatype(feature) if draw(st.integers(0, 5)) else draw(st.sampled_from([*FORMATS, "BYTES"]))
        rows = n + 1 if odd == 1 and i == 0 else n
        shape: list[Any] = [rows] if draw(st.booleans()) else [rows, 1]
        if odd == 2 and i == 0:
            shape = [1, rows + 1] if rows else [2, 2]
        if odd == 3 and i == len(names) - 1:
            shape = [draw(st.sampled_from([float(rows), rows == 1]))]  # equal to [rows] in Python, not in JSON
        size = int(math.prod(shape))
        if datatype == "BYTES" and feature is not None and feature.categories and draw(st.integers(0, 3)):
            pool: list[Any] = list(feature.categories)  # mostly known names: the bulk path's own ground
        elif datatype == "BYTES":
            pool = [*TEXT, NOT_UTF8] if binary else TEXT
        elif datatype in ("FP64", "FP32", "FP16"):
            pool = [*NUMBERS, math.inf] if binary else NUMBERS
        elif datatype == "BOOL":
            pool = [True, False]
        else:
            pool = INTEGERS
        values = draw(st.lists(st.sampled_from(pool), min_size=size, max_size=size))
        inputs.append({"name": name, "datatype": datatype, "shape": shape, "values": values})
    return inputs, binary


def _usual_datatype(feature: Feature | None) -> str:
    if feature is None or feature.dtype in ("category", "string"):
        return "BYTES"
    return {"float64": "FP64", "float32": "FP32", "int64": "INT64", "bool": "BOOL"}[feature.dtype]


def body_of(inputs: list[dict[str, Any]], binary: bool, one_by_one: bool) -> tuple[bytes, int | None]:
    """The request as a client sends it; `one_by_one` adds a parameter that keeps the decoder off its bulk path."""
    documents, blobs = [], []
    for tensor in inputs:
        document = {k: tensor[k] for k in ("name", "datatype", "shape")}
        values = tensor["values"]
        if binary:
            blob = _binary(tensor["datatype"], values)
            document["parameters"] = {"binary_data_size": len(blob), **({"one_by_one": True} if one_by_one else {})}
            blobs.append(blob)
        else:
            document["data"] = values
            if one_by_one:
                document["parameters"] = {}
        documents.append(document)
    header = json.dumps({"inputs": documents}).encode()
    return (header + b"".join(blobs), len(header)) if binary else (header, None)


def _binary(datatype: str, values: list[Any]) -> bytes:
    if datatype == "BYTES":
        encoded = [v if isinstance(v, bytes) else v.encode() for v in values]
        return b"".join(struct.pack("<I", len(v)) + v for v in encoded)
    fmt = FORMATS[datatype]
    out = b""
    for value in values:
        value = math.nan if value is None else value
        if fmt in ("<f", "<e") and abs(value) > (3.4e38 if fmt == "<f" else 65504.0):
            value = math.inf if value > 0 else -math.inf  # as numpy casts it: the model must see it, refused
        try:
            out += struct.pack(fmt, value)
        except struct.error:  # an int the datatype cannot hold: wrapped, as numpy would send it
            out += np.array([value]).astype(fmt).tobytes()
    return out


# -- outcomes --------------------------------------------------------------------------------------


def outcome(run: Any) -> Any:
    """What a path gives: its columns (or other result), or the error it raises (type, message, row errors)."""
    try:
        # A float32 feature sent 1e300 overflows in numpy's cast (then is refused as not finite),
        # on every path alike: the warning is not what is compared here.
        with np.errstate(over="ignore"):
            result = run()
    except InvalidInput as error:
        return type(error).__name__, str(error), [_row_error(e) for e in error.errors]
    return summary(result) if isinstance(result, Columns) else result


def summary(columns: Columns) -> Any:
    frame = {name: _cells(columns.frame[name]) for name in columns.frame}
    return "ok", columns.rows.tolist(), [_row_error(e) for e in columns.errors], columns.n_input, frame


def _cells(column: np.ndarray) -> list[Any]:
    return [repr(v) for v in column.tolist()]  # repr: NaN equals NaN, 1 differs from 1.0


def _row_error(error: Any) -> tuple[Any, ...]:
    return error.row, error.field, error.reason, repr(error.received)


def decoded(body: bytes, length: int | None) -> Any:
    request = decode_infer_request(body, length)
    return [
        (t.name, t.datatype, t.shape, t.data.dtype.str, repr(t.data.tolist()), t.data.flags.writeable)
        for t in request.inputs
    ]


# -- the properties --------------------------------------------------------------------------------

SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.sampled_from([FLOATS, MIXED]).flatmap(lambda s: st.tuples(st.just(s), requests(s))))
def test_the_bulk_decoder_gives_what_decoding_input_by_input_gives(case):
    _, (inputs, binary) = case
    assert outcome(lambda: decoded(*body_of(inputs, binary, one_by_one=False))) == outcome(
        lambda: decoded(*body_of(inputs, binary, one_by_one=True))
    )


@SETTINGS
@given(st.sampled_from([FLOATS, MIXED]).flatmap(lambda s: st.tuples(st.just(s), requests(s))))
def test_named_tensors_are_refused_and_accepted_as_before_with_the_same_reasons(case):
    signature, (inputs, binary) = case
    body, length = body_of(inputs, binary, one_by_one=False)
    reference_body, reference_length = body_of(inputs, binary, one_by_one=True)

    def served() -> Columns:
        return signature.coerce(inputs_from_request(signature, decode_infer_request(body, length)))

    def before() -> Columns:
        request = decode_infer_request(reference_body, reference_length)
        return signature.coerce(reference_inputs(signature, request.inputs))

    assert outcome(served) == outcome(before)


@SETTINGS
@given(
    n=st.integers(1, 4),
    datatype=st.sampled_from(["FP64", "FP32", "INT64", "UINT8"]),
    binary=st.booleans(),
    data=st.data(),
)
def test_numbers_give_the_rows_one_2d_tensor_gives(n, datatype, binary, data):
    pool = INTEGERS if datatype == "INT64" else [*NUMBERS[:-2], None, *([math.inf, 1e300] if binary else [])]
    if datatype == "UINT8":
        pool = [0, 1, 2, 3, 255]
    names = [f.name for f in FLOATS.inputs]
    columns = {name: data.draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n)) for name in names}
    named = [{"name": k, "datatype": datatype, "shape": [n], "values": v} for k, v in columns.items()]
    matrix = [[columns[name][r] for name in names] for r in range(n)]
    flat = [v for row in matrix for v in row]
    one = [{"name": "input", "datatype": datatype, "shape": [n, len(names)], "values": flat}]

    def served(inputs: list[dict[str, Any]]) -> Columns:
        body, length = body_of(inputs, binary, one_by_one=False)
        return FLOATS.coerce(inputs_from_request(FLOATS, decode_infer_request(body, length)))

    assert outcome(lambda: served(named)) == outcome(lambda: served(one))


# -- remembered structures ---------------------------------------------------------------------------
# The bulk decoder remembers what a JSON request's structure (its inputs' names and datatypes,
# in order) decides, and the server where those inputs go in a model's matrix; only the shapes
# and the data are then checked per request. Each case is decoded and served with nothing
# remembered, then after a request of the same names and datatypes with good data: both give
# the same outcome, for bad data too, for a shape equal in Python but not in JSON ([1.0], [true]
# against [1]), and for an extra key.

GOOD = {"BYTES": "a", "BOOL": True, "FP64": 1.5, "FP32": 1.5, "FP16": 1.5}


def forget() -> None:
    bulk_inputs._LAYOUTS.clear()
    oip_rows._PLACES.clear()


def both(signature: Signature, body: bytes, length: int | None = None) -> tuple[Any, Any]:
    """The decoded tensors and the served columns (or the errors each raises)."""

    def served() -> Columns:
        return signature.coerce(inputs_from_request(signature, decode_infer_request(body, length)))

    return outcome(lambda: decoded(body, length)), outcome(served)


def fresh(signature: Signature, body: bytes, length: int | None = None) -> tuple[Any, Any]:
    forget()
    try:
        decoded_fresh = outcome(lambda: decoded(body, length))
        forget()
        return decoded_fresh, both(signature, body, length)[1]
    finally:
        forget()


def prime(signature: Signature, inputs: list[dict[str, Any]]) -> bool:
    """Decode and serve a request of these names and datatypes with good data; whether its structure is remembered."""
    shape = inputs[0]["shape"]
    shape = shape if all(type(d) is int for d in shape) else [1]
    size = 1
    for dim in shape:
        size *= dim
    good = [
        {"name": i["name"], "datatype": i["datatype"], "shape": shape, "data": [GOOD.get(i["datatype"], 1)] * size}
        for i in inputs
    ]
    both(signature, json.dumps({"inputs": good}).encode())
    names = tuple(i["name"] for i in inputs)
    return (names, tuple(i["datatype"] for i in inputs)) in bulk_inputs._LAYOUTS


@SETTINGS
@given(st.sampled_from([FLOATS, MIXED]).flatmap(lambda s: st.tuples(st.just(s), requests(s))))
def test_a_remembered_structure_gives_what_a_fresh_decoder_gives(case):
    signature, (inputs, binary) = case
    assume(not binary)  # structures are remembered for JSON requests
    body, _ = body_of(inputs, binary=False, one_by_one=False)
    expected = fresh(signature, body)
    remembered = prime(signature, inputs)
    if len({i["name"] for i in inputs}) == len(inputs) and len(inputs) > 1:
        assert remembered  # the good request's structure is remembered: the next decode takes that path
    assert both(signature, body) == expected
    assert both(signature, body) == expected  # and again, with this request's own structure remembered if valid
    forget()


def churnish(**changes: Any) -> list[dict[str, Any]]:
    inputs = [
        {"name": "plan", "datatype": "BYTES", "shape": [1], "data": ["pro"]},
        {"name": "tier", "datatype": "BYTES", "shape": [1], "data": ["gold"]},
        {"name": "x", "datatype": "FP64", "shape": [1], "data": [1.5]},
        {"name": "y", "datatype": "FP64", "shape": [1], "data": [2.5]},
    ]
    for name, change in changes.items():
        next(i for i in inputs if i["name"] == name).update(change)
    return inputs


@pytest.mark.parametrize(
    "inputs",
    [
        churnish(x={"data": ["1.5"]}),  # text for a number
        churnish(y={"data": [None]}),  # missing where the model needs it
        churnish(tier={"data": ["platinum"]}),  # not a known category
        churnish(plan={"data": [7]}),  # a number for BYTES
        churnish(x={"data": [1.5, 2.5]}),  # more values than the shape holds
        churnish(x={"data": 1.5}),  # not a list
        churnish(x={"shape": [1.0]}),  # equal to [1] in Python, not in JSON
        churnish(y={"shape": [True]}),
        churnish(x={"shape": [1, 1]}),  # its own shape
        churnish(x={"parameters": {}}),  # an extra key
        churnish(y={"parameters": {"binary_data_size": 8}}),
        churnish(plan={"extra": 1}),
        [*churnish(), {"name": "x", "datatype": "FP64", "shape": [1], "data": [1.0]}],  # repeated
    ],
)
def test_bad_data_and_near_structures_after_a_remembered_one(inputs):
    body = json.dumps({"inputs": inputs}).encode()
    expected = fresh(FLOATS, body)
    assert prime(FLOATS, churnish())
    assert both(FLOATS, body) == expected
    forget()


def test_a_remembered_structure_is_used_and_the_memory_is_bounded():
    forget()
    body = json.dumps({"inputs": churnish()}).encode()
    expected = fresh(FLOATS, body)
    assert expected[1][0] == "ok"
    for _ in range(3):
        assert both(FLOATS, body) == expected
    assert len(bulk_inputs._LAYOUTS) == 1
    for n in range(bulk_inputs._MAX_LAYOUTS + 10):
        inputs = [{"name": f"f{n}_{i}", "datatype": "FP64", "shape": [1], "data": [1.0]} for i in range(2)]
        decode_infer_request(json.dumps({"inputs": inputs}).encode())
    assert len(bulk_inputs._LAYOUTS) == bulk_inputs._MAX_LAYOUTS
    forget()
