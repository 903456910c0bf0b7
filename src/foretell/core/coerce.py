"""`Signature.coerce`: every accepted input form → validated columns + the rows refused.

A bad row is reported, never dropped in silence (and a value is never guessed: see
`values.py`): `Columns.errors` says which row, which field, what was expected and what
came, while `Columns.frame` holds the rows that passed, in input order.

Bulk forms (DataFrame, Arrow, 2-D arrays) are checked with vectorized numpy; only the
columns that fail a vectorized check are walked value by value to say which rows broke.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

import numpy as np

from foretell.core.columns import (
    Columns,
    Plan,
    arrow_codes,
    arrow_numbers,
    codes_or_errors,
    convert_array,
    convert_objects,
    domain_errors,
    float_column,
    is_arrow_text,
    matrix_errors,
    shown,
    text_codes,
)
from foretell.core.feature import Feature
from foretell.core.frame import Array, Frame
from foretell.core.values import BOOL_TYPES, MISSING, NUMBER_TYPES, Refused, convert_scalar
from foretell.errors import InvalidInput, RowError

__all__ = ["ExtraPolicy", "HasInputs", "arrow_numbers", "coerce_input", "describe_input", "plan_of"]

ExtraPolicy = Literal["reject", "ignore"]
"""What coercion does with a field that is not one of the model's features: refuse its row, or drop it."""

_ACCEPTED = (
    "a dict (one input), a list of dicts or of value lists, a pandas DataFrame, "
    "a pyarrow Table or RecordBatch, or a 2-D numpy array"
)


class HasInputs(Protocol):
    """What coercion reads of a `Signature`: its input features, in order.

    A protocol rather than the class, because `schema` imports this module (for
    `Signature.coerce`) and `core` has no import cycle.
    """

    @property
    def inputs(self) -> tuple[Feature, ...]: ...


# Plans by the identity of their signature, dropped when the signature is. Not keyed by the
# signature's value: hashing a frozen dataclass hashes every feature's fields, on every
# request, which would cost more than the rest of coercing a one-row request.
_plans: dict[int, Plan] = {}


def plan_of(signature: HasInputs) -> Plan:
    """The signature's coercion plan: worked out on its first use, kept while the signature lives."""
    key = id(signature)
    plan = _plans.get(key)
    if plan is None:
        # Two threads may both miss and build one each; either plan is right, and the
        # second finalizer finds nothing left to drop.
        plan = _plans[key] = Plan(signature.inputs)
        weakref.finalize(signature, _plans.pop, key, None).atexit = False
    return plan


def describe_input(data: object) -> str:
    """A short, one-line description of what was passed, for error messages."""
    if isinstance(data, np.ndarray):
        return f"a numpy array of shape {data.shape}"
    kind = type(data).__name__
    if kind in ("DataFrame", "Table", "RecordBatch") and hasattr(data, "shape"):
        return f"a {kind} of {data.shape[0]} rows"
    if isinstance(data, list | tuple):
        return f"a {kind} of {len(data)} items"
    text = " ".join(repr(data).split())
    return f"{kind} {text[:40] + '...' if len(text) > 40 else text}"


def coerce_input(signature: HasInputs, data: object, extra: ExtraPolicy) -> Columns:
    """`Signature.coerce`: what it says, for the signature's own plan (worked out on its first input)."""
    plan = plan_of(signature)
    columns = _typed(plan, data, extra)
    return _within_domains(plan, columns) if plan.bounded and columns.frame.n_rows else columns


def _within_domains(plan: Plan, columns: Columns) -> Columns:
    """`columns` less the rows holding a value outside its feature's domain, each refused naming the bound."""
    outside = domain_errors(plan, columns.frame, columns.rows)
    if not outside:
        return columns
    refused = np.isin(columns.rows, [e.row for e in outside if e.row is not None])
    keep = np.flatnonzero(~refused)
    errors = columns.errors + outside
    errors.sort(key=lambda e: (-1 if e.row is None else e.row, plan.index.get(e.field or "", plan.width)))
    return Columns(columns.frame.take(keep), columns.rows[keep], errors, columns.n_input)


def _typed(plan: Plan, data: object, extra: ExtraPolicy) -> Columns:
    kind = type(data)
    module = kind.__module__
    if module.startswith("pandas") and kind.__name__ == "DataFrame":
        return _from_dataframe(plan, data, extra)
    if module.startswith("pyarrow") and kind.__name__ in ("Table", "RecordBatch"):
        return _from_arrow(plan, data, extra)
    if isinstance(data, Frame):  # before Mapping, which a frame also is: its columns, not one row
        return _from_frame(plan, data, extra)
    if isinstance(data, np.ndarray):
        if isinstance(data, np.ma.MaskedArray):
            raise InvalidInput(
                "masked arrays are not accepted: their hidden values would be predicted; "
                "pass np.ma.filled(x, np.nan) if the model accepts missing values"
            )
        if data.dtype.names is not None:
            raise InvalidInput(
                f"a structured array (fields {list(data.dtype.names)}) is not accepted; "
                "pass a DataFrame (pandas.DataFrame(x)) or one dict per row"
            )
        if data.ndim == 2:
            return _from_matrix(plan, data)
        if data.ndim in (0, 1):
            return _from_rows(plan, [data], extra)
        raise InvalidInput(f"a numpy input must be 1-D (one row) or 2-D (rows × features); got {data.ndim}-D")
    if isinstance(data, Mapping):
        return _from_rows(plan, [data], extra)
    if isinstance(data, list | tuple):
        return _from_rows(plan, data, extra)
    if type(data) in NUMBER_TYPES or type(data) in BOOL_TYPES or isinstance(data, str) or data is None:
        return _from_rows(plan, [data], extra)
    raise InvalidInput(f"cannot read {describe_input(data)} as model input; accepted: {_ACCEPTED}")


# -- row-wise forms: dicts, value lists, scalars ---------------------------------------------------


def _from_rows(plan: Plan, rows: Sequence[Any], extra: ExtraPolicy) -> Columns:
    if len(rows) == 1 and plan.float_matrix and isinstance(rows[0], Mapping):
        return _one_float_row(plan, rows[0], extra)
    return _rows_to_columns(plan, rows, extra)


_NOT_A_FEATURE = "not a feature of this model (pass extra='ignore' to drop unknown fields)"


def _rows_to_columns(plan: Plan, rows: Sequence[Any], extra: ExtraPolicy) -> Columns:
    """Rows (dicts, value lists, or scalars for a one-feature model) → per-feature value lists → columns."""
    shapeless: list[RowError] = []  # rows that are not a dict or a list of the right length
    kept: list[int] = []
    values: dict[str, list[Any]] = {name: [] for name in plan.names}
    unknown: list[RowError] = []
    for r, row in enumerate(rows):
        if isinstance(row, Mapping):
            if extra == "reject":  # numbered among kept rows, like every error _build returns
                unknown += [RowError(len(kept), str(k), _NOT_A_FEATURE) for k in row if k not in plan.index]
            for name in plan.names:
                values[name].append(row.get(name, plan.absent[name]))
        elif isinstance(row, list | tuple) or (isinstance(row, np.ndarray) and row.ndim == 1):
            if len(row) != plan.width:
                shapeless.append(
                    RowError(r, None, f"expected {plan.width} values in signature order {plan.names}", row)
                )
                continue
            for name, value in zip(plan.names, row, strict=True):
                values[name].append(value)
        elif plan.scalar_feature is not None and not isinstance(row, np.ndarray | set | frozenset | bytes | Mapping):
            for name in plan.names:  # a bare value is the one required feature; optional ones are left out
                values[name].append(row if name == plan.scalar_feature else None)
        else:
            shapeless.append(RowError(r, None, f"expected a dict of features or a list of {plan.width} values", row))
            continue
        kept.append(r)
    checked = _build(plan, values, len(kept), unknown)
    if not shapeless:
        return checked
    # Rows of the wrong shape are refused once, as a whole; the others were checked value by
    # value, and their positions are mapped back to the input's.
    positions = np.array(kept, dtype=np.intp)
    for error in checked.errors:
        error.row = int(positions[error.row]) if error.row is not None else None
    errors = sorted(shapeless + checked.errors, key=lambda e: e.row if e.row is not None else -1)
    return Columns(checked.frame, positions[checked.rows], errors, len(rows))


def _one_float_row(plan: Plan, row: Mapping[Any, Any], extra: ExtraPolicy) -> Columns:
    """The real-time hot path: one dict into one float64 row, with no per-column arrays.

    Values that are plainly right (a number for a float, a known name for a category) take
    one type test each; anything else goes through the full rules, which explain refusals.
    """
    values: list[Any] = []
    errors: list[RowError] = []
    found = 0
    for feature, lookup in plan.row_rules:
        value = row.get(feature.name, MISSING)
        if value is MISSING and not feature.required:
            values.append(math.nan)  # left out, as an optional feature may be: missing
            continue
        if lookup is None:
            # `v - v == 0` holds for finite numbers only (inf - inf and NaN - NaN are NaN): one test
            # instead of isfinite; NaN and the rest go through the full rules below.
            if type(value) in NUMBER_TYPES and value - value == 0:
                values.append(value)
                found += 1
                continue
        elif type(value) is str and value in lookup:
            values.append(lookup[value])
            found += 1
            continue
        found += value is not MISSING
        try:
            values.append(convert_scalar(feature, plan.codes[feature.name], value))
        except Refused as refused:
            errors.append(RowError(0, feature.name, refused.reason, shown(value)))
            values.append(0.0)
    if extra == "reject" and len(row) > found:
        _extra_keys(plan, row, errors)
    if errors:
        return _refused_row(plan, errors)
    try:
        matrix = np.array([values], dtype=np.float64)
    except OverflowError:  # an int beyond float range: let the full rules say which
        return _rows_to_columns(plan, [row], extra)
    return Columns(Frame.from_matrix(matrix, plan.names, plan.index), _ROW_ZERO, errors, 1)


def _refused_row(plan: Plan, errors: list[RowError]) -> Columns:
    empty = np.empty((0, plan.width), dtype=np.float64)
    return Columns(Frame.from_matrix(empty, plan.names, plan.index), np.empty(0, np.intp), errors, 1)


_ROW_ZERO = np.zeros(1, np.intp)
_ROW_ZERO.flags.writeable = False


def _extra_keys(plan: Plan, row: Mapping[Any, Any], errors: list[RowError]) -> None:
    errors += [RowError(0, str(key), _NOT_A_FEATURE) for key in row if key not in plan.index]


# -- columnar forms: DataFrame, Arrow, 2-D arrays --------------------------------------------------


def _from_dataframe(plan: Plan, frame: Any, extra: ExtraPolicy) -> Columns:
    # Column labels may be ints (a DataFrame made from a bare array): match them by their text.
    labels = {str(c): c for c in frame.columns}
    _check_column_names(plan, [str(c) for c in frame.columns], extra, "DataFrame")
    raw: dict[str, Any] = {}
    errors: list[RowError] = []
    for feature in plan.features:
        if feature.name not in labels:  # an optional feature left out
            raw[feature.name] = [None] * len(frame)
            continue
        series = frame[labels[feature.name]]
        if feature.dtype == "category" and series.dtype.kind not in "iufb":
            raw[feature.name] = _pandas_codes(feature, plan, series, errors)
        elif isinstance(series.dtype, np.dtype):
            raw[feature.name] = series.to_numpy()
        elif series.dtype.kind in "iuf":  # pandas' nullable numbers: NA becomes NaN, then is judged as missing
            raw[feature.name] = series.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            raw[feature.name] = series.to_numpy(dtype=object)
    return _build(plan, raw, len(frame), errors)


def _pandas_codes(feature: Feature, plan: Plan, series: Any, errors: list[RowError]) -> Array:
    if hasattr(series.array, "__arrow_array__"):  # Arrow-backed strings: look up in Arrow, no objects
        import pyarrow as pa

        return arrow_codes(feature, plan, pa.array(series.array), errors)
    import pandas as pd

    try:
        codes = pd.Index(list(feature.categories or ())).get_indexer(series)
    except TypeError:  # unhashable cells (lists, dicts): the one-value rules say which rows
        column, column_errors = convert_objects(feature, plan, list(series))
        errors += column_errors
        return column
    return codes_or_errors(feature, plan, codes, series.array, errors)


def _from_arrow(plan: Plan, table: Any, extra: ExtraPolicy) -> Columns:
    _check_column_names(plan, list(table.schema.names), extra, "Arrow table")
    raw: dict[str, Any] = {}
    errors: list[RowError] = []
    names = set(table.schema.names)
    for feature in plan.features:
        if feature.name not in names:  # an optional feature left out
            raw[feature.name] = [None] * table.num_rows
            continue
        column = table.column(feature.name)
        if hasattr(column, "num_chunks"):
            column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        if feature.dtype == "category" and is_arrow_text(column.type):
            raw[feature.name] = arrow_codes(feature, plan, column, errors)
        else:
            raw[feature.name] = arrow_numbers(column)
    return _build(plan, raw, table.num_rows, errors)


def _from_frame(plan: Plan, frame: Frame, extra: ExtraPolicy) -> Columns:
    """Named numpy columns (what a server decodes from one tensor per feature), checked as they are.

    For a float-matrix model whose columns are all numbers (category names become codes
    here), the columns are stacked with one numpy call and checked as a whole, like a 2-D
    array: a row of thirty-two one-value columns costs what one [1, 32] array does.
    """
    names = list(frame)
    if names == plan.names:
        columns: list[Array | None] = list(frame.values())
    else:
        _check_column_names(plan, names, extra, "Frame")
        columns = [frame.get(name) for name in plan.names]
    raw: dict[str, Any] = {}
    errors: list[RowError] = []
    numbers = plan.float_matrix
    for feature, column in zip(plan.features, columns, strict=True):
        if column is None:  # an optional feature left out
            raw[feature.name] = [None] * frame.n_rows
            numbers = False
            continue
        kind = column.dtype.kind
        if feature.dtype == "category" and kind in "OU":
            column = text_codes(feature, plan, column, errors)
            kind = column.dtype.kind
        raw[feature.name] = column
        numbers = numbers and kind in "iuf" and column.ndim == 1
    if numbers:
        matrix = np.array(list(raw.values()), dtype=np.float64).T  # (features × rows), read transposed as _build does
        errors += matrix_errors(plan, matrix)
        return _assemble_frame(Frame.from_matrix(matrix, plan.names, plan.index), frame.n_rows, errors)
    return _build(plan, raw, frame.n_rows, errors)


def _check_column_names(plan: Plan, names: list[str], extra: ExtraPolicy, form: str) -> None:
    present = set(names)
    if len(present) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise InvalidInput(
            f"{form} has repeated column names {repeated}: each feature must be one column",
            [RowError(None, n, "repeated column") for n in repeated],
        )
    missing = [n for n in plan.names if n not in present and plan.absent[n] is MISSING]
    problems: list[RowError] = [RowError(None, n, "missing column: the model needs this feature") for n in missing]
    unknown = [n for n in names if n not in plan.codes]
    if unknown and extra == "reject":
        problems += [RowError(None, n, _NOT_A_FEATURE) for n in unknown]
    if problems:
        parts = []
        if missing:
            parts.append(f"missing feature column(s) {missing}")
        if unknown and extra == "reject":
            parts.append(f"unknown column(s) {unknown} (pass extra='ignore' to drop them)")
        raise InvalidInput(f"{form} does not match the signature: {'; '.join(parts)}", problems)


def _from_matrix(plan: Plan, matrix: np.ndarray) -> Columns:
    n, width = matrix.shape
    if width != plan.width:
        raise InvalidInput(
            f"a 2-D array needs one column per feature in signature order ({plan.width}: {plan.names}); "
            f"got {width} columns",
            [RowError(None, None, f"expected {plan.width} columns, got {width}")],
        )
    if plan.float_matrix and matrix.dtype.kind in "iuf":
        values = np.ascontiguousarray(matrix, dtype=np.float64)
        return _assemble_frame(Frame.from_matrix(values, plan.names, plan.index), n, matrix_errors(plan, values))
    return _build(plan, {name: matrix[:, i] for i, name in enumerate(plan.names)}, n, [])


def _build(plan: Plan, raw: Mapping[str, Sequence[Any] | np.ndarray], n: int, errors: list[RowError]) -> Columns:
    """Raw per-feature values (lists or arrays) → checked columns; `errors` holds problems found so far."""
    if plan.float_matrix:
        # Filled column by column into (features × rows) and used transposed: each write is
        # contiguous, several times faster than strided writes into a row-major matrix.
        by_feature = np.empty((plan.width, n), dtype=np.float64)
        for i, feature in enumerate(plan.features):
            column, column_errors = float_column(feature, plan, raw[feature.name])
            by_feature[i] = column
            errors.extend(column_errors)
        matrix = by_feature.T
        errors.extend(matrix_errors(plan, matrix))
        return _assemble_frame(Frame.from_matrix(matrix, plan.names, plan.index), n, errors)
    columns: dict[str, Array] = {}
    for feature in plan.features:
        values = raw[feature.name]
        if isinstance(values, np.ndarray):
            column, column_errors = convert_array(feature, plan, values)
        else:
            column, column_errors = convert_objects(feature, plan, list(values))
        columns[feature.name] = column
        errors.extend(column_errors)
    return _assemble(columns, n, errors)


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
