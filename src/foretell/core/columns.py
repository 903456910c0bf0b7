"""Whole columns into a feature's dtype: vectorized checks first, value by value only where they fail.

`Columns` is what a coercion gives back; `Plan` is what it works out once per signature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from foretell.core.feature import Feature, fits_float_matrix
from foretell.core.frame import Array, Frame
from foretell.core.values import INT_BOUNDS, MISSING, NUMBER_TYPES, Refused, convert_scalar
from foretell.errors import InvalidInput, RowError


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

    def raise_for_errors(self) -> None:
        if self.errors:
            raise InvalidInput.from_rows(self.errors, self.n_input)


class Plan:
    """What coercion needs to know about a signature's input features, worked out once."""

    __slots__ = (
        "absent",
        "bounded",
        "category_at",
        "category_sizes",
        "codes",
        "dtypes",
        "features",
        "float_matrix",
        "high",
        "index",
        "low",
        "missing_ok",
        "names",
        "nan_ok",
        "row_bounds",
        "row_rules",
        "scalar_feature",
        "width",
    )

    def __init__(self, features: tuple[Feature, ...]) -> None:
        self.features = features
        self.names = [f.name for f in features]
        # What a row that leaves a feature out holds for it: missing for an optional
        # feature, MISSING (refused, "the model needs this feature") for a required one.
        self.absent: dict[str, Any] = {f.name: MISSING if f.required else None for f in features}
        # A bare value as a row (`17`, not `{"user_id": 17}`) is the model's one required feature.
        required = [f.name for f in features if f.required]
        self.scalar_feature = required[0] if len(required) == 1 else None
        self.index = {name: i for i, name in enumerate(self.names)}
        self.width = len(self.names)
        self.float_matrix = fits_float_matrix(features)
        # Features with a domain, checked once the types are: empty for most models, which then pay nothing.
        self.bounded = [f for f in features if f.domain is not None]
        self.codes = {f.name: {c: i for i, c in enumerate(f.categories or ())} for f in features}
        self.dtypes = {f.name: _column_dtype(f) for f in features}
        # For float-matrix signatures, validity is checked on the whole matrix at once: a few
        # numpy calls per batch instead of a few per column, which is what one row costs.
        self.missing_ok = np.array([f.allow_missing for f in features], dtype=bool)
        self.category_at = np.array([i for i, f in enumerate(features) if f.dtype == "category"], dtype=np.intp)
        self.category_sizes = np.array([len(features[i].categories or ()) for i in self.category_at])
        # The bounds every valid cell lies within: finite floats, or a category's code range.
        # NaN and ±inf fall outside any bounds, so one pair of comparisons clears a clean matrix.
        finite = np.finfo(np.float64).max
        self.low = np.full(self.width, -finite)
        self.high = np.full(self.width, finite)
        self.low[self.category_at] = 0.0
        self.high[self.category_at] = self.category_sizes - 1.0
        self.nan_ok = self.missing_ok.copy()
        self.nan_ok[self.category_at] = False  # a code must be a whole number: NaN is never one
        self.row_rules = [(f, self.codes[f.name] if f.dtype == "category" else None) for f in features]
        # The same bounds as plain floats, per column: one served row is checked faster in Python
        # than by a dozen numpy calls on a 1-row matrix, each with its fixed cost (docs/benchmarks.md,
        # "predict_overhead").
        is_category = np.zeros(self.width, dtype=bool)
        is_category[self.category_at] = True
        self.row_bounds = list(
            zip(self.low.tolist(), self.high.tolist(), self.nan_ok.tolist(), is_category.tolist(), strict=True)
        )


def _column_dtype(feature: Feature) -> np.dtype[Any]:
    if feature.dtype == "category":
        return np.dtype(np.float64)
    if feature.dtype == "string":
        return np.dtype(object)
    return np.dtype(feature.dtype)


def shown(value: Any) -> Any:
    return None if value is MISSING else value


def convert_objects(feature: Feature, plan: Plan, values: list[Any]) -> tuple[Array, list[RowError]]:
    """Python values of one feature → one typed column; refused values become row errors."""
    dtype = plan.dtypes[feature.name]
    numeric = feature.dtype in ("float64", "float32", "int64", "int32") and not feature.shape
    if numeric and all(type(v) in NUMBER_TYPES for v in values):
        try:
            array = np.array(values, dtype=np.float64 if feature.dtype.startswith("float") else None)
        except OverflowError:
            pass
        else:
            if array.dtype.kind in "iuf":  # ints beyond int64 make an object array: walk those one by one
                return convert_array(feature, plan, array)
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
            column[r] = convert_scalar(feature, plan.codes[feature.name], value)
        except Refused as refused:
            errors.append(RowError(r, feature.name, refused.reason, shown(value)))
            column[r] = None if dtype.kind == "O" else 0
    return column, errors


def arrow_codes(feature: Feature, plan: Plan, column: Any, errors: list[RowError]) -> Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    found = pc.index_in(column, value_set=_arrow_names(feature.categories or (), column.type))
    if hasattr(found, "num_chunks"):
        found = found.combine_chunks()
    codes = arrow_numbers(found)  # not `fill_null(-1)`: making the -1 an Arrow scalar imports pandas
    if found.null_count:
        codes[np.isnan(codes)] = -1
    return codes_or_errors(feature, plan, codes, column, errors)


def _arrow_names(names: Sequence[str], kind: Any) -> Any:
    """A category's names as an Arrow array of `kind`, built from its buffers.

    `pa.array(names)` imports pandas on its first call (pyarrow checks whether the list is a
    pandas object), a third of a second under the import lock where a batch job's threads
    score their first chunk.
    """
    import pyarrow as pa

    encoded = [name.encode() for name in names]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum(list(map(len, encoded)), out=offsets[1:])
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    array = pa.Array.from_buffers(pa.string(), len(encoded), buffers)
    return array if kind == pa.string() else array.cast(kind)


def arrow_numbers(column: Any) -> Array:
    """An Arrow column as numpy, as `to_numpy(zero_copy_only=False)` gives it, without pandas for numbers.

    pyarrow's conversion imports pandas on its first call (a third of a second, under the
    import lock, so a batch job's scoring threads all waited on it); an integer or float
    column is a view of its values buffer instead. Nulls become NaN, in a float64 copy for
    integers, as pyarrow's conversion makes them. Anything else goes through pyarrow.
    """
    import pyarrow as pa

    kind = column.type
    floating = pa.types.is_floating(kind)
    buffers = column.buffers()
    if len(buffers) != 2 or buffers[1] is None or not (floating or pa.types.is_integer(kind)):
        return np.asarray(column.to_numpy(zero_copy_only=False))
    letter = "f" if floating else "i" if pa.types.is_signed_integer(kind) else "u"
    n, offset = len(column), column.offset
    values = np.frombuffer(buffers[1], dtype=np.dtype(f"{letter}{kind.bit_width // 8}"), count=offset + n)[offset:]
    if column.null_count:
        bits = np.unpackbits(np.frombuffer(buffers[0], np.uint8), count=offset + n, bitorder="little")[offset:]
        values = values.astype(values.dtype if floating else np.float64)
        values[bits == 0] = np.nan
    return values


def text_codes(feature: Feature, plan: Plan, column: np.ndarray, errors: list[RowError]) -> Array:
    """A column of category names (objects or numpy text) → codes as floats, by one dict lookup per value in C.

    Only the values not found (unknown names, missing values, other types) are judged one by one.
    """
    lookup = plan.codes[feature.name]
    values = column.tolist()
    try:
        codes = list(map(lookup.get, values, repeat(-1)))
    except TypeError:  # unhashable cells (lists, dicts): the one-value rules say which rows
        converted, column_errors = convert_objects(feature, plan, values)
        errors += column_errors
        return converted
    if -1 not in codes:
        return np.array(codes, dtype=np.float64)
    return codes_or_errors(feature, plan, np.array(codes, dtype=np.intp), values, errors)


def is_arrow_text(kind: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def codes_or_errors(feature: Feature, plan: Plan, codes: np.ndarray, originals: Any, errors: list[RowError]) -> Array:
    """Category codes found by a vectorized lookup (-1 = not found) as floats; the misses are judged one by one.

    A miss is a missing value (NaN if the feature allows it) or an unknown name (an error
    naming it); only the misses pay for Python-level checks.
    """
    floats = codes.astype(np.float64)
    for r in np.flatnonzero(codes < 0).tolist():
        value = originals[r]
        value = value.as_py() if hasattr(value, "as_py") else value
        try:
            floats[r] = convert_scalar(feature, plan.codes[feature.name], value)
        except Refused as refused:
            errors.append(RowError(r, feature.name, refused.reason, value))
            floats[r] = 0.0
    return floats


def float_column(feature: Feature, plan: Plan, values: Sequence[Any] | np.ndarray) -> tuple[Array, list[RowError]]:
    """One float64 or category column as float64, refusing wrong types; finiteness and codes are checked later."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        return values, []
    if isinstance(values, list) and feature.dtype == "float64" and all(type(v) in NUMBER_TYPES for v in values):
        try:
            return np.array(values, dtype=np.float64), []
        except OverflowError:
            pass
    if isinstance(values, np.ndarray) and values.dtype.kind not in "OUST":
        return refuse_all(feature, plan, values, f"expected {expected_text(feature)}; the column holds {values.dtype}")
    column, errors = convert_objects(feature, plan, list(values))
    if errors:
        column[[e.row for e in errors if e.row is not None]] = (
            0.0  # refused cells are reported once, not again as non-finite
        )
    return column, errors


def matrix_errors(plan: Plan, matrix: np.ndarray) -> list[RowError]:
    """Non-finite values where a feature takes none, and category codes out of range, across a whole matrix."""
    if _clean(plan, matrix):
        return []
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
    return [value_error(plan.features[c], plan, r, matrix[r, c]) for r, c in sorted(set(cells))]


def _clean(plan: Plan, matrix: np.ndarray) -> bool:
    """Whether every cell is valid, in as few numpy calls as a clean matrix allows (a served row pays per call)."""
    if matrix.shape[0] == 1:
        return _clean_row(plan, matrix[0].tolist())
    inside = (matrix >= plan.low) & (matrix <= plan.high)
    if not inside.all() and not (inside | (np.isnan(matrix) & plan.nan_ok)).all():
        return False
    if not len(plan.category_at):
        return True
    codes = matrix[:, plan.category_at]
    return bool((codes == np.floor(codes)).all())


def _clean_row(plan: Plan, row: list[float]) -> bool:
    for value, (low, high, nan_ok, is_category) in zip(row, plan.row_bounds, strict=True):
        if low <= value <= high:
            if is_category and not value.is_integer():
                return False
        elif not (nan_ok and value != value):  # NaN is the one value unequal to itself
            return False
    return True


def convert_array(feature: Feature, plan: Plan, array: np.ndarray) -> tuple[Array, list[RowError]]:
    """One column of a bulk input → the feature's column, checked with vectorized numpy."""
    kind = array.dtype.kind
    if feature.shape or kind not in "iufb":
        if kind in "OUST":
            return convert_objects(feature, plan, list(array))
        if not feature.shape:
            return refuse_all(
                feature, plan, array, f"expected {expected_text(feature)}; the column holds {array.dtype}"
            )
        return convert_objects(feature, plan, list(array))
    if kind == "b":
        if feature.dtype == "bool":
            return array.astype(bool, copy=False), []
        return refuse_all(feature, plan, array, f"expected {expected_text(feature)}, not true/false")
    if feature.dtype == "bool":
        return refuse_all(feature, plan, array, "expected true or false (bool)")
    if feature.dtype == "string":
        return refuse_all(feature, plan, array, "expected a string")
    if feature.dtype in ("int64", "int32"):
        return check_ints(feature, plan, array)
    return _checkfloat_column(feature, plan, array)


def expected_text(feature: Feature) -> str:
    return "a category" if feature.dtype == "category" else f"a value of type {feature.dtype}"


def _checkfloat_column(feature: Feature, plan: Plan, array: np.ndarray) -> tuple[Array, list[RowError]]:
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
    return column, [value_error(feature, plan, r, array[r]) for r in np.flatnonzero(bad).tolist()]


def check_ints(feature: Feature, plan: Plan, array: np.ndarray) -> tuple[Array, list[RowError]]:
    low, high = INT_BOUNDS[feature.dtype]
    bad: np.ndarray | None = None
    if array.dtype.kind == "f":
        # float(2**63 - 1) rounds up to 2**63, so the upper bound is tested as `>= high + 1`.
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(array) | (array != np.floor(array)) | (array < low) | (array >= float(high) + 1)
    elif not np.can_cast(array.dtype, feature.dtype):  # uint64 into int64, int64 into int32, ...
        bad = (array < low) | (array > high)
    errors: list[RowError] = []
    if bad is not None and bad.any():
        rows = np.flatnonzero(bad)
        errors = [value_error(feature, plan, int(r), array[r]) for r in rows]
        array = array.copy()
        array[rows] = 0
    return array.astype(feature.dtype), errors


def value_error(feature: Feature, plan: Plan, row: int, value: Any) -> RowError:
    """The error the one-value rules give `value`: one wording whichever path found it."""
    plain = plain_value(value)
    try:
        convert_scalar(feature, plan.codes[feature.name], plain)
    except Refused as refused:
        return RowError(row, feature.name, refused.reason, plain)
    return RowError(row, feature.name, f"expected a valid {feature.dtype} value", plain)


def plain_value(value: Any) -> Any:
    """A numpy scalar as the Python value a person would recognise (a datetime stays a datetime)."""
    if isinstance(value, np.datetime64 | np.timedelta64):
        return value
    return value.item() if hasattr(value, "item") else value


def domain_errors(plan: Plan, frame: Frame, rows: np.ndarray) -> list[RowError]:
    """Values of `frame` (rows already typed and valid, at input positions `rows`) outside their feature's domain."""
    errors: list[RowError] = []
    if frame.n_rows == 1:  # a served row: a few comparisons in Python beat a few numpy calls per feature
        for feature in plan.bounded:
            value = frame[feature.name][0]
            value = value.item() if hasattr(value, "item") else value
            reason = feature.domain.refusal(value) if feature.domain is not None else None
            if reason is not None:
                errors.append(RowError(int(rows[0]), feature.name, reason, value))
        return errors
    for feature in plan.bounded:
        domain = feature.domain
        assert domain is not None
        column = frame[feature.name]
        for r in np.flatnonzero(domain.outside(column)).tolist():
            value = plain_value(column[r])
            errors.append(RowError(int(rows[r]), feature.name, domain.refusal(value) or "outside its domain", value))
    return errors


def refuse_all(feature: Feature, plan: Plan, array: np.ndarray, reason: str) -> tuple[Array, list[RowError]]:
    column = np.zeros((len(array), *feature.shape), dtype=plan.dtypes[feature.name])
    return column, [RowError(r, feature.name, reason, plain_value(array[r])) for r in range(len(array))]
