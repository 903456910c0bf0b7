"""MLflow's scoring format (`POST /invocations`), so MLflow clients can call a foretell server.

A request body is JSON with exactly one of `dataframe_split`, `dataframe_records`,
`instances` or `inputs` (plus optional `params`), or CSV with a header row. Each is turned
into a form `Signature.coerce` reads, keeping rows whole so a bad row is reported as that
row: a list of row dicts (column → value), a list of value lists in signature order
(`instances` / `inputs` as rows, `dataframe_split` without `columns`), or, for CSV, a
pyarrow Table. JSON may hold bare `NaN` (a missing value) and `±Infinity`, as MLflow's
server reads them. The answer is `{"predictions": [...]}`, as MLflow writes it; NaN and
infinity become `null`, since JSON has neither.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from foretell.core.predictor import Predictions
from foretell.core.schema import Signature
from foretell.errors import InvalidInput, ProtocolError, UnsupportedMediaType
from foretell.formats import csv_column_types, read_csv

__all__ = [
    "CONTENT_TYPES",
    "FORMATS",
    "Invocation",
    "decode_invocations",
    "encode_predictions",
    "parse_invocations",
]

#: The JSON keys MLflow accepts, one per request (MLflow's SUPPORTED_FORMATS).
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
CONTENT_TYPES = ("application/json", "text/csv")


@dataclass(frozen=True, slots=True)
class Invocation:
    """A decoded `/invocations` body: the rows, and MLflow's optional `params` object."""

    data: object
    params: dict[str, Any] = field(default_factory=dict)


def decode_invocations(body: bytes, content_type: str, *, signature: Signature | None = None) -> object:
    """The rows of an `/invocations` body, in a form `Signature.coerce` accepts; `params` is dropped.

    MLflow, too, ignores params a model does not declare; use `parse_invocations` to see them.
    """
    return parse_invocations(body, content_type, signature=signature).data


def parse_invocations(body: bytes, content_type: str, *, signature: Signature | None = None) -> Invocation:
    media = _media_type(content_type)
    if media == "text/csv":
        return Invocation(_read_csv(body, signature))
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        document = _loads_with_constants(body, exc)
    if not isinstance(document, dict):
        raise ProtocolError(
            f"the JSON body must be an object with one of the keys {', '.join(FORMATS)}, got {_kind(document)} "
            '(since MLflow 2.0 a bare list is wrapped, e.g. {"dataframe_records": [...]})'
        )
    found = [key for key in FORMATS if key in document]
    if len(found) != 1:
        raise ProtocolError(
            f"the JSON body needs exactly one of the keys {', '.join(FORMATS)}; got {sorted(map(str, document))[:10]}"
        )
    params = document.get("params")
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        raise ProtocolError(f"'params' must be a JSON object, got {_kind(params)}")
    key = found[0]
    value = document[key]
    if key == "dataframe_split":
        return Invocation(_dataframe_split(value), params)
    if key == "dataframe_records":
        return Invocation(_dataframe_records(value), params)
    if key == "instances":
        return Invocation(_rows(value, key), params)
    return Invocation(_inputs(value), params)


def _media_type(content_type: str) -> str:
    media, *options = (part.strip() for part in (content_type or "").split(";"))
    media = media.lower()
    if media not in CONTENT_TYPES:
        raise UnsupportedMediaType(
            f"unsupported content type {content_type[:80]!r}: /invocations reads "
            f"{' or '.join(CONTENT_TYPES)} (charset utf-8)"
        )
    for option in options:
        key, _, value = option.partition("=")
        if key.strip().lower() != "charset" or value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMediaType(
                f"unsupported content type {content_type[:80]!r}: the only parameter accepted is charset=utf-8"
            )
    return media


# -- NaN and Infinity ------------------------------------------------------------------------------

# pandas writes a DataFrame's missing values as bare NaN (and infinities as Infinity), so MLflow's
# own client sends them, and MLflow's server (the stdlib json module) reads them. orjson refuses
# them, so a body orjson refuses is read again here, and only then: the usual path stays orjson's.
_CONSTANTS = {"NaN": None, "Infinity": math.inf, "-Infinity": -math.inf}
_INT64_MIN, _UINT64_END = -(2**63), 2**64


def _json_int(text: str) -> int | float:
    # As orjson reads them: an integer beyond 64 bits becomes a float, so both paths give one value.
    number = int(text)
    return number if _INT64_MIN <= number < _UINT64_END else float(number)


def _loads_with_constants(body: bytes, orjson_error: orjson.JSONDecodeError) -> Any:
    """JSON that may hold NaN (read as missing) and ±Infinity (left for the signature to refuse)."""
    refusal = ProtocolError(f"the request body is not valid JSON: {orjson_error}")
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=_CONSTANTS.__getitem__, parse_int=_json_int)
        # The stdlib reads what orjson refuses besides these tokens (lone surrogates, e.g.); what
        # orjson cannot write back is refused as it would have been.
        orjson.dumps(document)
    except (ValueError, TypeError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise refusal from None
    return document


# -- the four JSON formats -------------------------------------------------------------------------


def _dataframe_split(value: Any) -> list[Any]:
    """pandas' split orient: `{"columns": [...], "data": [[...], ...], "index"?: [...]}` → row dicts."""
    if not isinstance(value, dict):
        raise ProtocolError(f"'dataframe_split' must be an object with 'columns' and 'data', got {_kind(value)}")
    data = value.get("data")
    if not isinstance(data, list):
        raise ProtocolError(f"'dataframe_split.data' must be a list of rows, got {_kind(data)}")
    columns = value.get("columns")
    if columns is None:  # no names: each row is its values in signature order
        width = len(data[0]) if data and isinstance(data[0], list) else 0
    else:
        if not isinstance(columns, list) or not all(type(c) in (str, int) for c in columns):
            raise ProtocolError("'dataframe_split.columns' must be a list of column names")
        columns = [str(c) for c in columns]  # pandas writes int labels as ints; features are named by text
        if len(set(columns)) != len(columns):
            repeated = sorted({c for c in columns if columns.count(c) > 1})
            raise ProtocolError(f"'dataframe_split.columns' repeats {repeated}")
        width = len(columns)
    for index, row in enumerate(data):
        if not isinstance(row, list) or len(row) != width:
            raise ProtocolError(
                f"'dataframe_split.data[{index}]' must be a list of {width} values (one per column), "
                f"got {_kind(row)}" + (f" of {len(row)}" if isinstance(row, list) else "")
            )
    if columns is None:
        return data
    return [dict(zip(columns, row, strict=True)) for row in data]


def _dataframe_records(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise ProtocolError(f"'dataframe_records' must be a list of row objects, got {_kind(value)}")
    for index, row in enumerate(value):
        if not isinstance(row, dict):
            raise ProtocolError(f"'dataframe_records[{index}]' must be an object (column → value), got {_kind(row)}")
    return value


def _rows(value: Any, key: str) -> list[Any]:
    """TF-serving's row format: row dicts, or value lists in signature order (scalars for one feature)."""
    if not isinstance(value, list):
        raise ProtocolError(f"{key!r} must be a list of rows, got {_kind(value)}")
    return value


def _inputs(value: Any) -> list[Any]:
    """TF-serving's columnar format: `{column: [one value per row]}` → row dicts; a list is rows."""
    if isinstance(value, list):
        return _rows(value, "inputs")
    if not isinstance(value, dict) or not value:
        raise ProtocolError(
            f"'inputs' must be an object of columns (name → list of values) or a list of rows, "
            f"got {_kind(value) if value != {} else 'an empty object'}"
        )
    names = list(value)
    columns = list(value.values())
    lists = [isinstance(c, list) for c in columns]
    if not any(lists):  # every column a single value: one row
        return [dict(value)]
    if not all(lists):
        scalar = names[lists.index(False)]
        raise ProtocolError(f"'inputs' column {scalar[:60]!r} must be a list of values like the others, one per row")
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        counts = {name: len(c) for name, c in zip(names, columns, strict=True)}
        raise ProtocolError(f"'inputs' columns must have the same number of values; got {counts}")
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


# -- CSV -------------------------------------------------------------------------------------------


def _read_csv(body: bytes, signature: Signature | None) -> Any:
    """CSV with a header row → a pyarrow Table (typed by the signature when there is one)."""
    dtypes = {}
    if signature is not None:
        dtypes = {f.name: f.dtype for f in signature.inputs if not f.shape}
    try:
        table = read_csv(body, "the CSV body", csv_column_types(dtypes))
    except InvalidInput as exc:
        arrow = str(exc.__cause__ or exc)
        raise ProtocolError(f"the CSV body could not be read: {_conversion_error(arrow, body, dtypes)}") from None
    # Arrow keeps a column (or header) that is not UTF-8 as raw bytes; the body promised UTF-8 text.
    try:
        names = table.schema.names
    except UnicodeDecodeError:
        raise ProtocolError("the CSV body could not be read: the header row is not UTF-8 text") from None
    for name, kind in zip(names, table.schema.types, strict=True):
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            raise ProtocolError(f"the CSV body could not be read: column {name!r} is not UTF-8 text")
    return table


# Arrow names a cell it cannot convert by position ("In CSV column #0: Row #3: CSV conversion error
# to double: invalid value 'x'"); a client needs the feature's name and rule, as coerce says them.
_CONVERSION = re.compile(r"In CSV column #(\d+): (?:Row #(\d+): )?CSV conversion error to \w+: invalid value '(.*)'$")
_CSV_RULES = {
    "float64": "expected a number (float64)",
    "float32": "expected a number (float32)",
    "int64": "expected a whole number (int64)",
    "int32": "expected a whole number (int32)",
    "bool": "expected true or false (bool)",
}


def _conversion_error(message: str, body: bytes, dtypes: dict[str, str]) -> str:
    found = _CONVERSION.search(message)
    if found is None:
        return message
    column, row, value = found.groups()
    try:
        header = next(csv.reader(io.StringIO(body.decode("utf-8", errors="replace"))))
        name = header[int(column)]
    except (StopIteration, IndexError, csv.Error):
        return message
    # Arrow counts the header as row 1 and may not know the row when it reads in parallel.
    where = f"row {int(row) - 2}, " if row is not None and int(row) >= 2 else ""
    rule = _CSV_RULES.get(dtypes.get(name, ""), "expected a value of the feature's type")
    return f"{where}field {name!r}: {rule}; got {value!r}"


# -- the answer ------------------------------------------------------------------------------------


def encode_predictions(predictions: Predictions, prediction_id: str | None = None) -> bytes:
    """`{"predictions": [...]}`: a list of values for one output, a list of row objects for several.

    With `prediction_id` (the ledger's id for the request), also `"prediction_id": "..."`.
    """
    columns = {name: _jsonable(column) for name, column in predictions.columns.items()}
    if len(columns) == 1:
        (payload,) = columns.values()
    else:
        n = len(predictions)
        payload = [{name: column[i] for name, column in columns.items()} for i in range(n)]
    document: dict[str, Any] = {"predictions": payload}
    if prediction_id is not None:
        document["prediction_id"] = prediction_id
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)


def _jsonable(column: np.ndarray) -> Any:
    # orjson writes numeric arrays itself (float32 as its shortest text, NaN as null); it needs
    # them C-contiguous and native-endian. Strings and objects go through tolist().
    if column.dtype.kind in "biuf" and column.ndim >= 1:
        return np.ascontiguousarray(column, dtype=column.dtype.newbyteorder("="))
    return column.tolist()


_JSON_KINDS = {dict: "an object", list: "a list", str: "a string", bool: "a bool", int: "an int", float: "a float"}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return _JSON_KINDS.get(type(value), type(value).__name__)
