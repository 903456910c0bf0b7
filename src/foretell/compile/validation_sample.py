"""Rows to prove a compiled predictor on: the user's own sample, topped up with generated rows.

A parity proof is only as good as its rows. Uniform noise would miss what breaks a
compiled tree ensemble: a value exactly on a split threshold (`<=` against `<`, a
float64 threshold narrowed to float32), one a hair either side of it, a missing value
sent down the wrong default branch, a category code in a set split. So generated rows
mix values across each feature's range (observed in the sample, or spanned by the
model's own thresholds) with those edge values, the extremes, and NaN wherever the
signature accepts it. Everything is drawn from a fixed seed: the same model gets the
same proof.

`validation_rows` is what a compilation proves on: the rows of the user's sample that
the signature accepts, then generated ones, within the ranges recorded at registration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from foretell.compile.ranges import OBSERVED_RANGES
from foretell.core.feature import Feature
from foretell.core.frame import Frame
from foretell.core.model import ModelInfo
from foretell.core.schema import Signature
from foretell.errors import ForetellError

__all__ = [
    "DEFAULT_ROWS",
    "MIN_ROWS",
    "matrix_reason",
    "validation_frame",
    "validation_matrix",
    "validation_rows",
]

MIN_ROWS = 10_000
DEFAULT_ROWS = 16_384

_MATRIX_DTYPES = frozenset({"float64", "float32", "int64", "int32", "bool", "category"})
_MISSING_SHARE = 0.05
_LARGEST = 1e300


def matrix_reason(signature: Signature) -> str | None:
    """Why the inputs do not fit one numeric matrix (which compiled predictors take), or None if they do."""
    for feature in signature.inputs:
        if feature.shape:
            return (
                f"feature {feature.name!r} is a vector (shape {list(feature.shape)}); compiled predictors take scalars"
            )
        if feature.dtype not in _MATRIX_DTYPES:
            return f"feature {feature.name!r} is a {feature.dtype}; compiled predictors take numbers and categories"
    return None


def validation_matrix(
    signature: Signature,
    *,
    rows: int = DEFAULT_ROWS,
    seed: int = 0,
    observed: np.ndarray | None = None,
    edges: Mapping[str, Sequence[float]] | None = None,
    ranges: Mapping[str, Sequence[float]] | None = None,
) -> np.ndarray:
    """`rows` rows (columns in signature order, float64): up to three quarters `observed`, then generated ones.

    `observed` holds real rows (already validated); their per-feature ranges bound the
    generated values, and a quarter of the rows at least are generated, so the edge
    cases are there however large the sample. `edges` maps a feature to values where
    the model's answer can change (a tree ensemble's split thresholds). `ranges` maps a
    feature to the [min, max] real data was seen to span (recorded at registration), which
    widens its generated range like observed rows would.
    """
    reason = matrix_reason(signature)
    if reason is not None:
        raise ValueError(reason)
    width = len(signature.inputs)
    real = np.empty((0, width)) if observed is None else np.asarray(observed, dtype=np.float64).reshape(-1, width)
    real = real[: rows - rows // 4]
    missing = rows - len(real)
    rng = np.random.default_rng(seed)
    edges = edges or {}
    ranges = ranges or {}
    columns = [
        _generated_column(
            feature,
            missing,
            rng,
            real[:, i],
            np.asarray(edges.get(feature.name, ()), dtype=np.float64),
            _bounds(ranges.get(feature.name)),
        )
        for i, feature in enumerate(signature.inputs)
    ]
    generated = np.column_stack(columns)
    return np.concatenate([real, generated]) if len(real) else generated


def validation_rows(
    info: ModelInfo, sample: object | None, rows: int, edges: Mapping[str, Sequence[float]]
) -> np.ndarray:
    """`rows` rows to prove `info`'s compiled predictor on: `sample`'s valid rows, topped up with generated ones.

    `sample` is a Parquet or CSV path, a DataFrame or an Arrow table (or None); the ranges
    recorded at registration (`OBSERVED_RANGES`) widen the generated values like real rows would.
    """
    observed = None
    if sample is not None:
        columns = info.signature.coerce(_read_sample(sample), extra="ignore")
        observed = columns.frame.matrix(np.float64)
    recorded = info.metadata.get(OBSERVED_RANGES)
    ranges = recorded if isinstance(recorded, Mapping) else None
    return validation_matrix(info.signature, rows=rows, observed=observed, edges=edges, ranges=ranges)


def validation_frame(info: ModelInfo, matrix: np.ndarray) -> Frame:
    """The rows as the model receives them after coercion: category codes, NaN for missing values.

    Not coerced again: a missing category is NaN in a coerced frame (it came as None or
    null), but a matrix input may not send NaN as a category code, and those rows matter.
    """
    if matrix.ndim != 2 or matrix.shape[1] != len(info.signature.inputs):
        raise ForetellError(f"validation rows of shape {list(matrix.shape)} do not fit {info.uri}'s signature")
    return Frame.from_matrix(np.ascontiguousarray(matrix, dtype=np.float64), info.signature.input_names)


def _read_sample(sample: object) -> object:
    if isinstance(sample, str | Path):
        path = Path(sample)
        if not path.is_file():
            raise ForetellError(f"the validation sample {path} does not exist")
        if path.suffix.lower() == ".csv":
            import pyarrow.csv as pv

            return pv.read_csv(path)
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path)
        except Exception as exc:
            raise ForetellError(f"cannot read the validation sample {path} as Parquet (or give a .csv): {exc}") from exc
    return sample


def _bounds(recorded: Sequence[float] | None) -> np.ndarray:
    """A recorded [min, max] as an array of its finite ends (empty when there is none)."""
    try:
        values = np.asarray(list(recorded or ()), dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return np.empty(0)
    return values[np.isfinite(values)]


def _generated_column(
    feature: Feature, n: int, rng: np.random.Generator, seen: np.ndarray, edges: np.ndarray, bounds: np.ndarray
) -> np.ndarray:
    if feature.dtype == "category":
        assert feature.categories is not None
        values = rng.integers(0, len(feature.categories), size=n).astype(np.float64)
        values[: min(n, 2)] = (0, len(feature.categories) - 1)[: min(n, 2)]
    elif feature.dtype == "bool":
        values = rng.integers(0, 2, size=n).astype(np.float64)
    else:
        values = _numbers(n, rng, seen[np.isfinite(seen)], edges[np.isfinite(edges)], bounds)
        if feature.dtype in ("int64", "int32"):
            values = np.round(values)
            if feature.dtype == "int32":
                values = np.clip(values, -(2**31), 2**31 - 1)
        elif feature.dtype == "float32":
            values = values.astype(np.float32).astype(np.float64)
    if feature.allow_missing:
        values[rng.random(n) < _MISSING_SHARE] = np.nan
        values[min(n - 1, 2)] = np.nan  # at least one, whatever the draw
    return values


def _numbers(n: int, rng: np.random.Generator, seen: np.ndarray, edges: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """A mix: the range (uniform), the edges and a hair either side, the real values, and extremes."""
    span = np.concatenate([seen, edges, bounds])
    if span.size:
        # Bounded so that the padded range and its width stay finite next to float64's largest values.
        low, high = max(float(span.min()), -_LARGEST), min(float(span.max()), _LARGEST)
    else:
        low, high = -3.0, 3.0
    pad = max(0.1 * (high - low), 1.0)
    uniform = rng.uniform(low - pad, high + pad, size=n)
    if edges.size:
        picked = edges[rng.integers(0, edges.size, size=n)]
        # A third on the edge itself, a third just below it, a third just above.
        side = rng.integers(0, 3, size=n)
        near = np.where(
            side == 0, picked, np.where(side == 1, np.nextafter(picked, -np.inf), np.nextafter(picked, np.inf))
        )
    else:
        near = rng.normal(0.0, max(abs(low), abs(high), 1.0), size=n)
    real = seen[rng.integers(0, seen.size, size=n)] if seen.size else uniform
    extremes = np.array([0.0, low, high, low - pad, high + pad, -1.0, 1.0])[rng.integers(0, 7, size=n)]
    choice = rng.random(n)
    values = np.where(choice < 0.4, uniform, np.where(choice < 0.75, near, np.where(choice < 0.92, real, extremes)))
    values[: min(n, 2)] = (low - pad, high + pad)[: min(n, 2)]
    return values
