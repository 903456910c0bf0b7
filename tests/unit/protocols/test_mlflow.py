"""MLflow's `/invocations` formats: the same rows however they are sent, and clear refusals."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foretell.core.feature import Feature
from foretell.core.predictor import Predictions
from foretell.core.schema import Output, Signature
from foretell.errors import InvalidInput, ProtocolError, UnsupportedMediaType
from foretell.protocols.mlflow import FORMATS, decode_invocations, encode_predictions, parse_invocations

SIG = Signature(
    (
        Feature("tenure", "float64"),
        Feature("plan", "category", categories=("basic", "premium")),
        Feature("calls", "int64"),
        Feature("active", "bool"),
        Feature("age", "float64", allow_missing=True),
    ),
    (Output("score", "score"),),
)
ROWS = [
    {"tenure": 12.5, "plan": "basic", "calls": 3, "active": True, "age": 40.0},
    {"tenure": 0.0, "plan": "premium", "calls": 0, "active": False, "age": None},
]
COLUMNS = list(ROWS[0])
JSON = "application/json"

BODIES = {
    "dataframe_split": {"dataframe_split": {"columns": COLUMNS, "data": [list(r.values()) for r in ROWS]}},
    "dataframe_split+index": {
        "dataframe_split": {"index": [7, 8], "columns": COLUMNS, "data": [list(r.values()) for r in ROWS]}
    },
    "dataframe_records": {"dataframe_records": ROWS},
    "instances": {"instances": ROWS},
    "inputs (columns)": {"inputs": {c: [r[c] for r in ROWS] for c in COLUMNS}},
    "inputs (rows)": {"inputs": ROWS},
}
CSV = b"tenure,plan,calls,active,age\n12.5,basic,3,true,40\n0,premium,0,false,\n"


def rows_of(data: object) -> object:
    """What a decoded body holds, rows as dicts whether it came back as rows or as a table (CSV)."""
    return data.to_pylist() if isinstance(data, pa.Table) else data


@pytest.mark.parametrize("form", list(BODIES))
def test_every_json_format_gives_the_same_rows(form):
    data = decode_invocations(orjson.dumps(BODIES[form]), JSON)
    assert rows_of(data) == ROWS
    columns = SIG.coerce(data)
    assert columns.ok, columns.errors
    assert columns.n_input == 2


@pytest.mark.parametrize("signature", [SIG, None], ids=["typed", "inferred"])
def test_csv_gives_the_same_rows(signature):
    table = decode_invocations(CSV, "text/csv", signature=signature)
    assert isinstance(table, pa.Table)
    assert rows_of(table) == ROWS
    assert SIG.coerce(table).ok


def test_all_forms_coerce_to_the_same_columns():
    frames = [SIG.coerce(decode_invocations(orjson.dumps(body), JSON)).frame for body in BODIES.values()]
    frames.append(SIG.coerce(decode_invocations(CSV, "text/csv; charset=utf-8", signature=SIG)).frame)
    for frame in frames[1:]:
        for name in SIG.input_names:
            np.testing.assert_array_equal(frame[name], frames[0][name])


def test_csv_with_a_signature_keeps_text_as_text():
    signature = Signature((Feature("zip", "string"), Feature("n", "float64")), (Output("s", "score"),))
    table = decode_invocations(b"zip,n\n007,1\n", "text/csv", signature=signature)
    assert isinstance(table, pa.Table)
    assert table.to_pylist() == [{"zip": "007", "n": 1.0}]
    inferred = decode_invocations(b"zip,n\n007,1\n", "text/csv")
    assert isinstance(inferred, pa.Table)
    assert inferred.to_pylist() == [{"zip": 7, "n": 1}]


def test_value_rows_stay_value_rows_in_signature_order():
    values = [list(r.values()) for r in ROWS]
    for body in ({"instances": values}, {"inputs": values}, {"dataframe_split": {"data": values}}):
        data = decode_invocations(orjson.dumps(body), JSON)
        assert data == values
        assert SIG.coerce(data).ok


def test_one_value_per_column_is_one_row():
    assert decode_invocations(orjson.dumps({"inputs": ROWS[0]}), JSON) == [ROWS[0]]


def test_int_column_labels_are_matched_by_their_text():
    body = {"dataframe_split": {"columns": [0, 1], "data": [[1, 2]]}}
    assert decode_invocations(orjson.dumps(body), JSON) == [{"0": 1, "1": 2}]


def test_params_are_kept_apart_from_the_rows():
    body = orjson.dumps({"dataframe_records": ROWS, "params": {"k": 5}})
    invocation = parse_invocations(body, JSON)
    assert invocation.params == {"k": 5}
    assert invocation.data == ROWS
    assert decode_invocations(body, JSON) == ROWS


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        'application/json;charset="UTF-8"',
        "application/json; charset=utf8",
    ],
)
def test_json_content_types_accepted(content_type):
    assert decode_invocations(orjson.dumps({"instances": [1]}), content_type) == [1]


@pytest.mark.parametrize(
    ("content_type", "fragment"),
    [
        ("text/plain", "unsupported content type 'text/plain': /invocations reads application/json or text/csv"),
        ("", "unsupported content type ''"),
        ("application/x-www-form-urlencoded", "unsupported content type"),
        ("application/json; charset=latin-1", "the only parameter accepted is charset=utf-8"),
        ("application/json; format=pandas-split", "the only parameter accepted is charset=utf-8"),
        ("text/csv; header=present", "the only parameter accepted is charset=utf-8"),
    ],
)
def test_other_content_types_are_unsupported_media(content_type, fragment):
    with pytest.raises(UnsupportedMediaType) as caught:
        decode_invocations(b"{}", content_type)
    assert fragment in str(caught.value)
    assert isinstance(caught.value, InvalidInput)
    assert not isinstance(caught.value, ProtocolError)  # 415, not 400


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{", "the request body is not valid JSON"),
        (b"", "the request body is not valid JSON"),
        (b"[1, 2]", "got a list (since MLflow 2.0 a bare list is wrapped"),
        (b"{}", "the JSON body needs exactly one of the keys dataframe_split, dataframe_records, instances, inputs"),
        (b'{"data": [[1]]}', "needs exactly one of the keys"),
        (b'{"instances": [1], "inputs": [1]}', "got ['inputs', 'instances']"),
        (b'{"instances": [1], "params": [1]}', "'params' must be a JSON object, got a list"),
        (b'{"instances": {"a": 1}}', "'instances' must be a list of rows, got an object"),
        (b'{"dataframe_records": {"a": 1}}', "'dataframe_records' must be a list of row objects, got an object"),
        (
            b'{"dataframe_records": [{"a": 1}, [1]]}',
            "'dataframe_records[1]' must be an object (column → value), got a list",
        ),
        (b'{"dataframe_split": [[1]]}', "'dataframe_split' must be an object with 'columns' and 'data', got a list"),
        (b'{"dataframe_split": {"columns": ["a"]}}', "'dataframe_split.data' must be a list of rows, got null"),
        (
            b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}',
            "'dataframe_split.data[0]' must be a list of 2 values (one per column), got a list of 1",
        ),
        (
            b'{"dataframe_split": {"columns": ["a"], "data": [1]}}',
            "'dataframe_split.data[0]' must be a list of 1 values (one per column), got an int",
        ),
        (b'{"dataframe_split": {"data": [[1, 2], [3]]}}', "'dataframe_split.data[1]' must be a list of 2 values"),
        (
            b'{"dataframe_split": {"columns": "a", "data": []}}',
            "'dataframe_split.columns' must be a list of column names",
        ),
        (b'{"dataframe_split": {"columns": ["a", "a"], "data": []}}', "'dataframe_split.columns' repeats ['a']"),
        (
            b'{"inputs": {"a": [1, 2], "b": [3]}}',
            "'inputs' columns must have the same number of values; got {'a': 2, 'b': 1}",
        ),
        (b'{"inputs": {"a": [1, 2], "b": 3}}', "'inputs' column 'b' must be a list of values like the others"),
        (b'{"inputs": {}}', "got an empty object"),
        (
            b'{"inputs": 5}',
            "'inputs' must be an object of columns (name → list of values) or a list of rows, got an int",
        ),
    ],
)
def test_malformed_json_bodies_say_what_is_wrong(body, fragment):
    with pytest.raises(ProtocolError) as caught:
        decode_invocations(body, JSON)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "the CSV body could not be read: Empty CSV file"),
        (b"a,b\n1,2,3\n", "the CSV body could not be read"),
        (b"tenure,plan,calls,active,age\nx,basic,3,true,1\n", "the CSV body could not be read"),
        (b"a\n\xff\xfe\n", "the CSV body could not be read: column 'a' is not UTF-8 text"),
        (b"plan\n\xff\xfe\n", "the CSV body could not be read"),
        (b"\x80a\n1\n", "the CSV body could not be read: the header row is not UTF-8 text"),
    ],
)
def test_malformed_csv_says_what_is_wrong(body, fragment):
    with pytest.raises(ProtocolError) as caught:
        decode_invocations(body, "text/csv", signature=SIG)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b"tenure,plan,calls,active,age\n1,basic,3,true,1\nx,basic,3,true,1\n",
            "the CSV body could not be read: row 1, field 'tenure': expected a number (float64); got 'x'",
        ),
        (b"calls,plan\n1.5,basic\n", "row 0, field 'calls': expected a whole number (int64); got '1.5'"),
        (b'"active"\nmaybe\n', "row 0, field 'active': expected true or false (bool); got 'maybe'"),
    ],
)
def test_a_csv_cell_its_feature_type_refuses_is_named_by_row_field_and_value(body, message):
    with pytest.raises(ProtocolError) as caught:
        decode_invocations(body, "text/csv", signature=SIG)
    assert message in str(caught.value)


# -- NaN and Infinity, as pandas and MLflow's client write them ------------------------------------------------


def test_bare_nan_tokens_are_missing_values_and_infinity_is_left_for_the_signature_to_refuse():
    body = (
        b'{"dataframe_split": {"index": [0, 1], "columns": ["tenure", "plan", "calls", "active", "age"], '
        b'"data": [[12.5, "basic", 3, true, NaN], [Infinity, NaN, 0, false, -Infinity]]}}'
    )
    rows = decode_invocations(body, JSON)
    assert isinstance(rows, list)
    assert rows[0] == {**ROWS[0], "age": None}
    assert rows[1]["plan"] is None
    assert rows[1]["tenure"] == math.inf and rows[1]["age"] == -math.inf
    columns = SIG.coerce(rows)
    assert [(e.row, e.field) for e in columns.errors] == [(1, "tenure"), (1, "plan"), (1, "age")]
    assert columns.errors[0].describe() == "row 1, field 'tenure': expected a finite number (float64); got float inf"
    assert SIG.coerce(decode_invocations(body.replace(b"Infinity", b"1"), JSON)).errors[0].field == "plan"


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": [NaN',  # truncated
        b'{"instances": ["\\ud800", NaN]}',  # a lone surrogate is not text orjson accepts, NaN or not
        b'{"instances": [nan]}',
        b'{"instances": [-NaN]}',
        b'{"instances": [NaN]}\xff',
        b"[" * 100_000 + b"NaN" + b"]" * 100_000,  # deeper than any parser's stack
    ],
)
def test_nan_does_not_open_a_door_to_other_invalid_json(body):
    with pytest.raises(ProtocolError) as caught:
        decode_invocations(body, JSON)
    assert "the request body is not valid JSON" in str(caught.value)


def test_integers_beyond_64_bits_read_the_same_with_or_without_nan():
    big = 2**64
    plain = decode_invocations(b'{"instances": [%d]}' % big, JSON)
    with_nan = decode_invocations(b'{"instances": [%d, NaN]}' % big, JSON)
    assert isinstance(plain, list) and isinstance(with_nan, list)
    assert plain == with_nan[:1] and type(plain[0]) is type(with_nan[0])


# -- the answer ------------------------------------------------------------------------------------------------


def predictions(columns: dict[str, np.ndarray], outputs: tuple[Output, ...]) -> Predictions:
    return Predictions(columns, outputs, len(next(iter(columns.values()))))


def test_one_output_is_a_list_of_values():
    body = encode_predictions(predictions({"score": np.array([0.25, np.nan, 1.0])}, (Output("score", "score"),)))
    assert orjson.loads(body) == {"predictions": [0.25, None, 1.0]}


def test_one_vector_output_is_a_list_of_lists():
    proba = Output("proba", "proba", shape=(2,), classes=("no", "yes"))
    body = encode_predictions(predictions({"proba": np.array([[0.75, 0.25], [0.5, 0.5]])}, (proba,)))
    assert orjson.loads(body) == {"predictions": [[0.75, 0.25], [0.5, 0.5]]}


def test_several_outputs_are_row_objects():
    outputs = (
        Output("label", "label", "string"),
        Output("score", "score", "float32"),
        Output("proba", "proba", shape=(2,), classes=("no", "yes")),
        Output("n", "value", "int64"),
        Output("flag", "value", "bool"),
    )
    columns = {
        "label": np.array(["yes", "no"], dtype=object),
        "score": np.array([0.1, np.inf], dtype=np.float32),
        "proba": np.array([[0.25, 0.75], [0.5, 0.5]])[:, ::-1],  # not contiguous: still written
        "n": np.array([3, -1], dtype=">i8"),  # big-endian: still written
        "flag": np.array([True, False]),
    }
    body = encode_predictions(predictions(columns, outputs))
    assert body.startswith(b'{"predictions":[{"label":"yes","score":0.1,')  # float32 0.1 is written as 0.1
    assert orjson.loads(body) == {
        "predictions": [
            {"label": "yes", "score": 0.1, "proba": [0.75, 0.25], "n": 3, "flag": True},
            {"label": "no", "score": None, "proba": [0.5, 0.5], "n": -1, "flag": False},
        ]
    }


def test_no_rows_is_an_empty_list():
    outputs = (Output("score", "score"), Output("label", "label", "string"))
    empty = Predictions({"score": np.empty(0), "label": np.empty(0, dtype=object)}, outputs, 0)
    assert orjson.loads(encode_predictions(empty)) == {"predictions": []}


# -- fuzzing: only InvalidInput comes out ---------------------------------------------------------------------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)
_FORMAT_BODIES = st.dictionaries(
    st.sampled_from([*FORMATS, "params", "columns", "data"]),
    st.one_of(
        _JSON,
        st.fixed_dictionaries({}, optional={"columns": _JSON, "data": _JSON, "index": _JSON}),
        st.dictionaries(st.text(max_size=3), st.lists(_SCALARS, max_size=3), max_size=3),
    ),
    max_size=3,
)
_CONTENT_TYPES = st.sampled_from(["application/json", "text/csv", "text/plain", "application/json; charset=utf-16"])


def decodes_or_refuses(body: bytes, content_type: str) -> None:
    try:
        data = decode_invocations(body, content_type, signature=SIG)
    except InvalidInput:
        return
    with contextlib.suppress(InvalidInput):
        SIG.coerce(data)  # whatever comes out is a form coerce reads (or refuses as InvalidInput)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200), _CONTENT_TYPES)
def test_arbitrary_bytes_raise_only_invalid_input(body, content_type):
    decodes_or_refuses(body, content_type)


@settings(max_examples=400, deadline=None)
@given(_FORMAT_BODIES)
def test_arbitrary_json_bodies_raise_only_invalid_input(document):
    decodes_or_refuses(orjson.dumps(document), JSON)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.text(max_size=5), min_size=1, max_size=4), max_size=4))
def test_arbitrary_csv_raises_only_invalid_input(cells):
    body = "\n".join(",".join(row) for row in cells).encode()
    decodes_or_refuses(body, "text/csv")


def test_nan_is_never_written_as_a_bare_token():
    body = encode_predictions(predictions({"s": np.array([math.nan, math.inf, -math.inf])}, (Output("s", "score"),)))
    assert body == b'{"predictions":[null,null,null]}'
