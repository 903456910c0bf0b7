"""`Signature.coerce`: every accepted input form → validated columns + the rows refused.

Two rules shape this module. A value is never guessed: `"3.5"` is not a number,
`True` is not 1.0, a missing key is not NaN. And a bad row is reported, never dropped
in silence: `Columns.errors` says which row, which field, what was expected and what
came, while `Columns.frame` holds the rows that passed, in input order.

Bulk forms (DataFrame, Arrow, 2-D arrays) are checked with vectorized numpy; only the
columns that fail a vectorized check are walked value by value to say which rows broke.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from foretell.core.frame import Array, Frame
from foretell.core.schema import ExtraPolicy, Feature, Signature
from foretell.errors import InvalidInput, RowError

__all__ = ["Columns", "coerce_input", "describe_input"]

_MISSING: Any = object()
_INT_TYPES = frozenset({int, np.int64, np.int32, np.int16, np.int8, np.uint64, np.uint32, np.uint16, np.uint8})
_FLOAT_TYPES = frozenset({float, np.float64, np.float32, np.float16})
_NUMBER_TYPES = _INT_TYPES | _FLOAT_TYPES
_BOOL_TYPES = frozenset({bool, np.bool_})
_INT_BOUNDS = {"int64": (-(2**63), 2**63 - 1), "int32": (-(2**31), 2**31 - 1)}
_ACCEPTED = (
    "a dict (one input), a list of dicts or of value lists, a pandas DataFrame, "
    "a pyarrow Table or RecordBatch, or a 2-D numpy array"
)


@dataclass(slots=True)
class Columns:
    """The outcome of coercing one input: the rows that passed, and why the others did not."""

    frame: Frame
    """Valid rows only, one column per feature in signature order."""
    rows: np.ndarray
    """Position in the input of each row of `frame`."""
    errors: list[RowError]
    """Every problem found, ordered by row."""
    n_input: int
    """Rows in the input, valid or not."""

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def rejected_rows(self) -> list[int]:
        return sorted({e.row for e in self.errors if e.row is not None})

    def raise_for_errors(self) -> None:
        if self.errors:
            raise InvalidInput.from_rows(self.errors, self.n_input)


class _Refused(Exception):
    """One value broke its feature's rule; `reason` says which rule."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Plan:
    """What coercion needs to know about a signature, worked out once."""

    __slots__ = (
        "category_at",
        "category_sizes",
        "codes",
        "dtypes",
        "float_matrix",
        "index",
        "missing_ok",
        "names",
        "row_rules",
        "width",
    )

    def __init__(self, signature: Signature) -> None:
        self.names = signature.input_names
        self.index = {name: i for i, name in enumerate(self.names)}
        self.width = len(self.names)
        self.float_matrix = signature.is_float_matrix
        self.codes = {f.name: {c: i for i, c in enumerate(f.categories or ())} for f in signature.inputs}
        self.dtypes = {f.name: _column_dtype(f) for f in signature.inputs}
        # For float-matrix signatures, validity is checked on the whole matrix at once: a few
        # numpy calls per batch instead of a few per column, which is what one row costs.
        self.missing_ok = np.array([f.allow_missing for f in signature.inputs], dtype=bool)
        self.category_at = np.array([i for i, f in enumerate(signature.inputs) if f.dtype == "category"], dtype=np.intp)
        self.category_sizes = np.array([len(signature.inputs[i].categories or ()) for i in self.category_at])
        self.row_rules = [(f, self.codes[f.name] if f.dtype == "category" else None) for f in signature.inputs]


def _plan(signature: Signature) -> _Plan:
    plan = signature._plan
    if plan is None:
        plan = _Plan(signature)
        object.__setattr__(signature, "_plan", plan)
    return plan  # type: ignore[no-any-return]


def _column_dtype(feature: Feature) -> np.dtype[Any]:
    if feature.dtype == "category":
        return np.dtype(np.float64)
    if feature.dtype == "string":
        return np.dtype(object)
    return np.dtype(feature.dtype)


def describe_input(data: object) -> str:
    """A short description of what was passed, for error messages."""
    if isinstance(data, np.ndarray):
        return f"a numpy array of shape {data.shape}"
    text = repr(data)
    return f"{type(data).__name__} {text[:40] + '...' if len(text) > 40 else text}"


def coerce_input(signature: Signature, data: object, extra: ExtraPolicy) -> Columns:
    plan = _plan(signature)
    kind = type(data)
    module = kind.__module__
    if module.startswith("pandas") and kind.__name__ == "DataFrame":
        return _from_dataframe(signature, plan, data, extra)
    if module.startswith("pyarrow") and kind.__name__ in ("Table", "RecordBatch"):
        return _from_arrow(signature, plan, data, extra)
    if isinstance(data, np.ndarray):
        if data.ndim == 2:
            return _from_matrix(signature, plan, data)
        if data.ndim in (0, 1):
            return _from_rows(signature, plan, [data], extra)
        raise InvalidInput(f"a numpy input must be 1-D (one row) or 2-D (rows × features); got {data.ndim}-D")
    if isinstance(data, Mapping):
        return _from_rows(signature, plan, [data], extra)
    if isinstance(data, list | tuple):
        return _from_rows(signature, plan, data, extra)
    if type(data) in _NUMBER_TYPES or type(data) in _BOOL_TYPES or isinstance(data, str) or data is None:
        return _from_rows(signature, plan, [data], extra)
    raise InvalidInput(f"cannot read {describe_input(data)} as model input; accepted: {_ACCEPTED}")


# -- row-wise forms: dicts, value lists, scalars ---------------------------------------------------


def _from_rows(signature: Signature, plan: _Plan, rows: Sequence[Any], extra: ExtraPolicy) -> Columns:
    if len(rows) == 1 and plan.float_matrix and isinstance(rows[0], Mapping):
        return _one_float_row(signature, plan, rows[0], extra)
    return _rows_to_columns(signature, plan, rows, extra)


_NOT_A_FEATURE = "not a feature of this model (pass extra='ignore' to drop unknown fields)"


def _rows_to_columns(signature: Signature, plan: _Plan, rows: Sequence[Any], extra: ExtraPolicy) -> Columns:
    """Rows (dicts, value lists, or scalars for a one-feature model) → per-feature value lists → columns."""
    shapeless: list[RowError] = []  # rows that are not a dict or a list of the right length
    kept: list[int] = []
    values: dict[str, list[Any]] = {name: [] for name in plan.names}
    unknown: list[RowError] = []
    for r, row in enumerate(rows):
        if isinstance(row, Mapping):
            if extra == "reject":
                unknown += [RowError(r, str(k), _NOT_A_FEATURE) for k in row if k not in plan.index]
            for name in plan.names:
                values[name].append(row.get(name, _MISSING))
        elif isinstance(row, list | tuple) or (isinstance(row, np.ndarray) and row.ndim == 1):
            if len(row) != plan.width:
                shapeless.append(
                    RowError(r, None, f"expected {plan.width} values in signature order {plan.names}", row)
                )
                continue
            for name, value in zip(plan.names, row, strict=True):
                values[name].append(value)
        elif plan.width == 1 and not isinstance(row, np.ndarray | set | frozenset | bytes):
            values[plan.names[0]].append(row)
        else:
            shapeless.append(RowError(r, None, f"expected a dict of features or a list of {plan.width} values", row))
            continue
        kept.append(r)
    if not shapeless:
        return _build(signature, plan, values, len(rows), unknown)
    # Rows of the wrong shape are refused once, as a whole; the rest are checked value by value
    # and their positions mapped back to the input's.
    checked = _build(signature, plan, values, len(kept), [])
    positions = np.array(kept, dtype=np.intp)
    for error in checked.errors:
        error.row = int(positions[error.row]) if error.row is not None else None
    errors = sorted(shapeless + unknown + checked.errors, key=lambda e: e.row if e.row is not None else -1)
    return Columns(checked.frame, positions[checked.rows], errors, len(rows))


def _one_float_row(signature: Signature, plan: _Plan, row: Mapping[Any, Any], extra: ExtraPolicy) -> Columns:
    """The real-time hot path: one dict into one float64 row, with no per-column arrays.

    Values that are plainly right (a number for a float, a known name for a category) take
    one type test each; anything else goes through the full rules, which explain refusals.
    """
    values: list[Any] = []
    errors: list[RowError] = []
    found = 0
    for feature, lookup in plan.row_rules:
        value = row.get(feature.name, _MISSING)
        if lookup is None:
            # `v - v == 0` holds for finite numbers only (inf - inf and NaN - NaN are NaN): one test
            # instead of isfinite; NaN and the rest go through the full rules below.
            if type(value) in _NUMBER_TYPES and value - value == 0:
                values.append(value)
                found += 1
                continue
        elif type(value) is str and value in lookup:
            values.append(lookup[value])
            found += 1
            continue
        found += value is not _MISSING
        try:
            values.append(_convert_scalar(feature, plan, value))
        except _Refused as refused:
            errors.append(RowError(0, feature.name, refused.reason, _shown(value)))
            values.append(0.0)
    if extra == "reject" and len(row) > found:
        _extra_keys(plan, row, errors)
    if errors:
        return _refused_row(plan, errors)
    try:
        matrix = np.array([values], dtype=np.float64)
    except OverflowError:  # an int beyond float range: let the full rules say which
        return _rows_to_columns(signature, plan, [row], extra)
    return Columns(Frame.from_matrix(matrix, plan.names, plan.index), _ROW_ZERO, errors, 1)


def _refused_row(plan: _Plan, errors: list[RowError]) -> Columns:
    empty = np.empty((0, plan.width), dtype=np.float64)
    return Columns(Frame.from_matrix(empty, plan.names, plan.index), np.empty(0, np.intp), errors, 1)


_ROW_ZERO = np.zeros(1, np.intp)
_ROW_ZERO.flags.writeable = False


def _extra_keys(plan: _Plan, row: Mapping[Any, Any], errors: list[RowError]) -> None:
    errors += [RowError(0, str(key), _NOT_A_FEATURE) for key in row if key not in plan.index]


def _shown(value: Any) -> Any:
    return None if value is _MISSING else value


def _convert_objects(feature: Feature, plan: _Plan, values: list[Any]) -> tuple[Array, list[RowError]]:
    """Python values of one feature → one typed column; refused values become row errors."""
    dtype = plan.dtypes[feature.name]
    numeric = feature.dtype in ("float64", "float32", "int64", "int32") and not feature.shape
    if numeric and all(type(v) in _NUMBER_TYPES for v in values):
        try:
            array = np.array(values, dtype=np.float64 if feature.dtype.startswith("float") else None)
        except OverflowError:
            pass
        else:
            if array.dtype.kind in "iuf":  # ints beyond int64 make an object array: walk those one by one
                return _convert_array(feature, plan, array)
    if feature.dtype == "category":
        lookup = plan.codes[feature.name]
        try:  # every value a known category name: one dict lookup each, no per-value checks
            return np.array([lookup[v] for v in values], dtype=np.float64), []
        except (KeyError, TypeError):
            pass
    n = len(values)
    shape = (n, *feature.shape)
    column = np.empty(shape, dtype=dtype)
    errors: list[RowError] = []
    for r, value in enumerate(values):
        try:
            column[r] = _convert_scalar(feature, plan, value)
        except _Refused as refused:
            errors.append(RowError(r, feature.name, refused.reason, _shown(value)))
            column[r] = None if dtype.kind == "O" else 0
    return column, errors


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if type(value) in _FLOAT_TYPES:
        return bool(value != value)
    return type(value).__name__ in ("NAType", "NaTType")


def _convert_scalar(feature: Feature, plan: _Plan, value: Any) -> Any:
    """One value → what the feature's column holds, or `_Refused` saying what was expected."""
    if value is _MISSING:
        raise _Refused("missing: the model needs this feature")
    dtype = feature.dtype
    if _is_missing(value):
        if not feature.allow_missing:
            raise _Refused(f"expected a {dtype} value, not a missing one (this feature does not accept missing values)")
        return None if dtype == "string" else math.nan
    if feature.shape:
        return _convert_vector(feature, value)
    kind = type(value)
    if dtype in ("float64", "float32"):
        if kind in _NUMBER_TYPES:
            number = float(value) if kind in _FLOAT_TYPES or abs(value) < 2**1000 else math.inf
            if math.isfinite(number):
                return number
            raise _Refused(f"expected a finite number ({dtype})")
        raise _Refused(f"expected a number ({dtype})")
    if dtype in ("int64", "int32"):
        low, high = _INT_BOUNDS[dtype]
        if kind in _INT_TYPES and low <= int(value) <= high:
            return int(value)
        if kind in _FLOAT_TYPES and math.isfinite(value) and float(value).is_integer() and low <= value <= high:
            return int(value)
        raise _Refused(f"expected a whole number that fits {dtype}")
    if dtype == "bool":
        if kind in _BOOL_TYPES:
            return bool(value)
        raise _Refused("expected true or false (bool)")
    if dtype == "string":
        if isinstance(value, str):
            return value
        raise _Refused("expected a string")
    # category
    codes = plan.codes[feature.name]
    if isinstance(value, str):
        code = codes.get(value)
        if code is not None:
            return float(code)
    elif kind in _NUMBER_TYPES and 0 <= value < len(codes) and float(value).is_integer():
        return float(value)
    raise _Refused(f"expected one of {_categories(feature)} (or an integer code 0..{len(codes) - 1})")


def _categories(feature: Feature) -> str:
    cats = list(feature.categories or ())
    shown = ", ".join(repr(c) for c in cats[:8])
    return shown + (f", ... ({len(cats)} in all)" if len(cats) > 8 else "")


def _convert_vector(feature: Feature, value: Any) -> Array:
    if isinstance(value, str | bytes | Mapping) or not hasattr(value, "__len__"):
        raise _Refused(f"expected a list of numbers of shape {list(feature.shape)}")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _Refused(f"expected a list of numbers of shape {list(feature.shape)}") from None
    if array.shape != feature.shape:
        raise _Refused(f"expected a list of numbers of shape {list(feature.shape)}, not {list(array.shape)}")
    bad = ~np.isfinite(array)
    if bad.any() and not (feature.allow_missing and not np.isinf(array).any()):
        raise _Refused(f"expected finite numbers of shape {list(feature.shape)}")
    return array


# -- columnar forms: DataFrame, Arrow, 2-D arrays --------------------------------------------------


def _from_dataframe(signature: Signature, plan: _Plan, frame: Any, extra: ExtraPolicy) -> Columns:
    _check_column_names(signature, plan, [str(c) for c in frame.columns], extra, "DataFrame")
    raw: dict[str, Any] = {}
    errors: list[RowError] = []
    for feature in signature.inputs:
        series = frame[feature.name]
        if feature.dtype == "category" and series.dtype.kind not in "iufb":
            if hasattr(series.array, "__arrow_array__"):  # Arrow-backed strings: look up in Arrow, no objects
                import pyarrow as pa

                raw[feature.name] = _arrow_codes(feature, plan, pa.array(series.array), errors)
            else:
                import pandas as pd

                codes = pd.Index(list(feature.categories or ())).get_indexer(series)
                raw[feature.name] = _codes_or_errors(feature, plan, codes, series.array, errors)
        elif isinstance(series.dtype, np.dtype):
            raw[feature.name] = series.to_numpy()
        elif series.dtype.kind in "iuf":  # pandas' nullable numbers: NA becomes NaN, then is judged as missing
            raw[feature.name] = series.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            raw[feature.name] = series.to_numpy(dtype=object)
    return _build(signature, plan, raw, len(frame), errors)


def _from_arrow(signature: Signature, plan: _Plan, table: Any, extra: ExtraPolicy) -> Columns:
    _check_column_names(signature, plan, list(table.schema.names), extra, "Arrow table")
    raw: dict[str, Any] = {}
    errors: list[RowError] = []
    for feature in signature.inputs:
        column = table.column(feature.name)
        if hasattr(column, "num_chunks"):
            column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        if feature.dtype == "category" and _is_arrow_text(column.type):
            raw[feature.name] = _arrow_codes(feature, plan, column, errors)
        else:
            raw[feature.name] = column.to_numpy(zero_copy_only=False)
    return _build(signature, plan, raw, table.num_rows, errors)


def _arrow_codes(feature: Feature, plan: _Plan, column: Any, errors: list[RowError]) -> Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    codes = pc.index_in(column, value_set=pa.array(feature.categories, type=column.type))
    return _codes_or_errors(feature, plan, codes.fill_null(-1).to_numpy(zero_copy_only=False), column, errors)


def _is_arrow_text(kind: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _codes_or_errors(feature: Feature, plan: _Plan, codes: np.ndarray, originals: Any, errors: list[RowError]) -> Array:
    """Category codes found by a vectorized lookup (-1 = not found) as floats; the misses are judged one by one.

    A miss is a missing value (NaN if the feature allows it) or an unknown name (an error
    naming it); only the misses pay for Python-level checks.
    """
    floats = codes.astype(np.float64)
    for r in np.flatnonzero(codes < 0).tolist():
        value = originals[r]
        value = value.as_py() if hasattr(value, "as_py") else value
        try:
            floats[r] = _convert_scalar(feature, plan, value)
        except _Refused as refused:
            errors.append(RowError(r, feature.name, refused.reason, value))
            floats[r] = 0.0
    return floats


def _check_column_names(signature: Signature, plan: _Plan, names: list[str], extra: ExtraPolicy, form: str) -> None:
    present = set(names)
    missing = [n for n in plan.names if n not in present]
    problems: list[RowError] = [RowError(None, n, "missing column: the model needs this feature") for n in missing]
    unknown = [n for n in names if n not in plan.codes]
    if unknown and extra == "reject":
        problems += [RowError(None, n, "not a feature of this model (pass extra='ignore' to drop it)") for n in unknown]
    if problems:
        parts = []
        if missing:
            parts.append(f"missing feature column(s) {missing}")
        if unknown and extra == "reject":
            parts.append(f"unknown column(s) {unknown} (pass extra='ignore' to drop them)")
        raise InvalidInput(f"{form} does not match the signature: {'; '.join(parts)}", problems)


def _from_matrix(signature: Signature, plan: _Plan, matrix: np.ndarray) -> Columns:
    n, width = matrix.shape
    if width != plan.width:
        raise InvalidInput(
            f"a 2-D array needs one column per feature in signature order ({plan.width}: {plan.names}); "
            f"got {width} columns",
            [RowError(None, None, f"expected {plan.width} columns, got {width}")],
        )
    if plan.float_matrix and matrix.dtype.kind in "iuf":
        values = np.ascontiguousarray(matrix, dtype=np.float64)
        return _assemble_frame(
            Frame.from_matrix(values, plan.names, plan.index), n, _matrix_errors(signature, plan, values)
        )
    return _build(signature, plan, {name: matrix[:, i] for i, name in enumerate(plan.names)}, n, [])


def _build(
    signature: Signature, plan: _Plan, raw: Mapping[str, Sequence[Any] | np.ndarray], n: int, errors: list[RowError]
) -> Columns:
    """Raw per-feature values (lists or arrays) → checked columns; `errors` holds problems found so far."""
    if plan.float_matrix:
        # Filled column by column into (features × rows) and used transposed: each write is
        # contiguous, several times faster than strided writes into a row-major matrix.
        by_feature = np.empty((plan.width, n), dtype=np.float64)
        for i, feature in enumerate(signature.inputs):
            column, column_errors = _floats(feature, plan, raw[feature.name])
            by_feature[i] = column
            errors.extend(column_errors)
        matrix = by_feature.T
        errors.extend(_matrix_errors(signature, plan, matrix))
        return _assemble_frame(Frame.from_matrix(matrix, plan.names, plan.index), n, errors)
    columns: dict[str, Array] = {}
    for feature in signature.inputs:
        values = raw[feature.name]
        if isinstance(values, np.ndarray):
            column, column_errors = _convert_array(feature, plan, values)
        else:
            column, column_errors = _convert_objects(feature, plan, list(values))
        columns[feature.name] = column
        errors.extend(column_errors)
    return _assemble(columns, n, errors)


def _floats(feature: Feature, plan: _Plan, values: Sequence[Any] | np.ndarray) -> tuple[Array, list[RowError]]:
    """One float64 or category column as float64, refusing wrong types; finiteness and codes are checked later."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        return values, []
    if isinstance(values, list) and feature.dtype == "float64" and all(type(v) in _NUMBER_TYPES for v in values):
        try:
            return np.array(values, dtype=np.float64), []
        except OverflowError:
            pass
    if isinstance(values, np.ndarray) and values.dtype.kind not in "OUST":
        return _refuse_all(feature, plan, values, f"expected {_expected(feature)}; the column holds {values.dtype}")
    column, errors = _convert_objects(feature, plan, list(values))
    if errors:
        column[[e.row for e in errors if e.row is not None]] = (
            0.0  # refused cells are reported once, not again as non-finite
        )
    return column, errors


def _matrix_errors(signature: Signature, plan: _Plan, matrix: np.ndarray) -> list[RowError]:
    """Non-finite values where a feature takes none, and category codes out of range, across a whole matrix."""
    cells: list[tuple[int, int]] = []
    finite = np.isfinite(matrix)
    if not finite.all():
        for c in np.flatnonzero(~finite.all(axis=0)).tolist():
            column = matrix[:, c]
            bad = np.isinf(column) if plan.missing_ok[c] else ~finite[:, c]
            cells += [(r, c) for r in np.flatnonzero(bad).tolist()]
    if len(plan.category_at):
        codes = matrix[:, plan.category_at]
        with np.errstate(invalid="ignore"):
            wrong = (codes < 0) | (codes >= plan.category_sizes) | (codes != np.floor(codes))
        if wrong.any():
            rows, at = np.nonzero(wrong)
            cells += zip(rows.tolist(), plan.category_at[at].tolist(), strict=True)
    return [_value_error(signature.inputs[c], plan, r, matrix[r, c]) for r, c in sorted(cells)]


def _convert_array(feature: Feature, plan: _Plan, array: np.ndarray) -> tuple[Array, list[RowError]]:
    """One column of a bulk input → the feature's column, checked with vectorized numpy."""
    kind = array.dtype.kind
    if feature.shape or kind not in "iufb":
        if kind in "OUST":
            return _convert_objects(feature, plan, list(array))
        if not feature.shape:
            return _refuse_all(feature, plan, array, f"expected {_expected(feature)}; the column holds {array.dtype}")
        return _convert_objects(feature, plan, list(array))
    if kind == "b":
        if feature.dtype == "bool":
            return array.astype(bool, copy=False), []
        return _refuse_all(feature, plan, array, f"expected {_expected(feature)}, not true/false")
    if feature.dtype == "bool":
        return _refuse_all(feature, plan, array, "expected true or false (bool)")
    if feature.dtype == "string":
        return _refuse_all(feature, plan, array, "expected a string")
    if feature.dtype in ("int64", "int32"):
        return _check_ints(feature, array)
    return _check_floats(feature, plan, array)


def _expected(feature: Feature) -> str:
    return "a category" if feature.dtype == "category" else f"a {feature.dtype} value"


def _check_floats(feature: Feature, plan: _Plan, array: np.ndarray) -> tuple[Array, list[RowError]]:
    column = array.astype(plan.dtypes[feature.name], copy=False)
    if column.dtype.kind != "f":
        return column, []
    finite = np.isfinite(column)
    if finite.all() and feature.dtype != "category":
        return column, []
    bad = ~finite if not feature.allow_missing else np.isinf(column)
    if feature.dtype == "category":
        codes = column[finite]
        wrong = (codes < 0) | (codes >= len(plan.codes[feature.name])) | (codes != np.floor(codes))
        bad = bad.copy()
        bad[np.flatnonzero(finite)[wrong]] = True
    if not bad.any():
        return column, []
    return column, [_value_error(feature, plan, r, array[r]) for r in np.flatnonzero(bad).tolist()]


def _check_ints(feature: Feature, array: np.ndarray) -> tuple[Array, list[RowError]]:
    low, high = _INT_BOUNDS[feature.dtype]
    if array.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(array) | (array != np.floor(array)) | (array < low) | (array > high)
    else:
        bad = (array < low) | (array > high) if array.dtype.itemsize * 8 > int(feature.dtype[3:]) else None
    errors: list[RowError] = []
    if bad is not None and bad.any():
        rows = np.flatnonzero(bad)
        errors = [
            RowError(int(r), feature.name, f"expected a whole number that fits {feature.dtype}", array[r].item())
            for r in rows
        ]
        array = array.copy()
        array[rows] = 0
    return array.astype(feature.dtype), errors


def _value_error(feature: Feature, plan: _Plan, row: int, value: Any) -> RowError:
    try:
        _convert_scalar(feature, plan, value.item() if hasattr(value, "item") else value)
    except _Refused as refused:
        return RowError(row, feature.name, refused.reason, value.item() if hasattr(value, "item") else value)
    return RowError(row, feature.name, f"expected a valid {feature.dtype} value", value)


def _refuse_all(feature: Feature, plan: _Plan, array: np.ndarray, reason: str) -> tuple[Array, list[RowError]]:
    column = np.zeros((len(array), *feature.shape), dtype=plan.dtypes[feature.name])
    return column, [RowError(r, feature.name, reason, array[r].item()) for r in range(len(array))]


# -- assembling the result --------------------------------------------------------------------------


def _assemble(columns: dict[str, Array], n: int, errors: list[RowError]) -> Columns:
    return _assemble_frame(Frame(columns, n_rows=n), n, errors)


def _assemble_frame(frame: Frame, n: int, errors: list[RowError]) -> Columns:
    if not errors:
        return Columns(frame, np.arange(n, dtype=np.intp), errors, n)
    bad = np.zeros(n, dtype=bool)
    for error in errors:
        if error.row is not None:
            bad[error.row] = True
    keep = np.flatnonzero(~bad)
    order = {name: i for i, name in enumerate(frame)}
    errors.sort(key=lambda e: (-1 if e.row is None else e.row, order.get(e.field or "", len(order))))
    return Columns(frame.take(keep), keep, errors, n)
