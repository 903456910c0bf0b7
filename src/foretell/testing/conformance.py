"""`check_model`: the promises every foretell model keeps, checked on real rows.

In the spirit of scikit-learn's `check_estimator`: hand it a loaded `Model` and a few
rows it accepts, and it asserts that

- N rows in give N rows out, and an empty batch gives an empty answer;
- every output the signature names is there, with the declared dtype and per-row shape;
- predicting the batch in 2 or 3 parts and joining the answers gives the whole batch's answer;
- predicting row by row with `Model.predict` gives the whole batch's answer, and
  `predict(x)` is exactly `predict_batch([x])[0]`.

Labels, top-k ids, booleans and strings must match exactly. Floats may differ in their
last bits with batch size, because numerical libraries pick kernels by shape (BLAS runs
GEMV for one row and blocked GEMM for many) and so sum in another order. For models
that compute in float64 that difference stays near 1e-15; the default bound
`|a - b| <= atol + rtol * |b|` with atol = rtol = 1e-9 leaves a wide margin above it
and still catches a row mixed up with another, which errs by the size of the outputs.
Models that compute in float32 (most ONNX graphs) differ by a few float32 ulps, about
1e-7 relative: check them with atol = rtol = 1e-6.

A failed promise raises `AssertionError` naming the model, the output, the rows and the
difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from foretell.core.model import Model
from foretell.core.predictor import Predictions

__all__ = ["check_model"]

_TOPK = ("topk_items", "topk_scores")


def check_model(
    model: Model,
    rows: Sequence[Any] | np.ndarray,
    *,
    k: int | None = None,
    atol: float = 1e-9,
    rtol: float = 1e-9,
) -> Predictions:
    """Run the conformance checks on `rows` and return the whole batch's predictions.

    `rows` is a list of single inputs (dicts, value lists or scalars) or a 2-D numpy
    array, at least 3 of them so the batch can be split in 3 parts. `k` is passed to
    every call, for top-k models.
    """
    if isinstance(rows, np.ndarray) and rows.ndim != 2:
        raise ValueError(f"check_model needs a 2-D array of rows, got shape {rows.shape}")
    if not isinstance(rows, np.ndarray | list | tuple):
        raise TypeError(f"check_model needs a list of inputs or a 2-D array, got {type(rows).__name__}")
    n = len(rows)
    if n < 3:
        raise ValueError(f"check_model needs at least 3 rows to split the batch in 3 parts; got {n}")
    name = f"model {model.info.name!r}"

    whole = model.predict_batch(rows, k=k)
    _check_outputs(model, whole, n, f"{name}, batch of {n} rows")
    _check_outputs(model, model.predict_batch(rows[:0], k=k), 0, f"{name}, empty batch")

    for parts in (2, 3):
        bounds = np.array_split(np.arange(n), parts)
        pieces = [model.predict_batch(rows[int(b[0]) : int(b[-1]) + 1], k=k) for b in bounds]
        sizes = "+".join(str(len(b)) for b in bounds)
        for piece, b in zip(pieces, bounds, strict=True):
            _check_outputs(model, piece, len(b), f"{name}, rows {b[0]}..{b[-1]}")
        joined = Predictions.concat(pieces)
        for output in whole.outputs:
            _assert_same(
                whole.column(output.name),
                joined.column(output.name),
                atol,
                rtol,
                f"{name}, output {output.name!r}: predicting {n} rows in {parts} parts ({sizes}) "
                f"differs from predicting them at once",
            )

    for i in range(n):
        one = model.predict(rows[i], k=k)
        again = model.predict_batch([rows[i]], k=k)[0]
        for output in whole.outputs:
            where = f"{name}, output {output.name!r}, row {i}"
            _assert_same(
                np.asarray(again[output.name]),
                np.asarray(one[output.name]),
                0.0,
                0.0,
                f"{where}: predict(x) differs from predict_batch([x])[0]",
            )
            _assert_same(
                whole.column(output.name)[i],
                np.asarray(one[output.name]),
                atol,
                rtol,
                f"{where}: predicting the row alone differs from predicting it in a batch of {n}",
            )
    return whole


def _check_outputs(model: Model, predictions: Predictions, n: int, where: str) -> None:
    if len(predictions) != n:
        raise AssertionError(f"{where}: {n} rows in, {len(predictions)} rows out")
    columns = predictions.columns
    declared = model.signature.output_names
    if sorted(columns) != sorted(declared):
        raise AssertionError(f"{where}: outputs {sorted(columns)}, the signature declares {sorted(declared)}")
    for output in model.signature.outputs:
        column = columns[output.name]
        dtype = np.dtype(object) if output.dtype == "string" else np.dtype(output.dtype)
        if column.dtype != dtype:
            raise AssertionError(
                f"{where}: output {output.name!r} has dtype {column.dtype}, the signature says {output.dtype}"
            )
        if len(column) != n:
            raise AssertionError(f"{where}: output {output.name!r} has {len(column)} rows, expected {n}")
        per_row = column.shape[1:]
        if output.kind in _TOPK:
            if len(per_row) != 1:
                raise AssertionError(
                    f"{where}: top-k output {output.name!r} has per-row shape {list(per_row)}, expected [k]"
                )
        elif per_row != output.shape:
            raise AssertionError(
                f"{where}: output {output.name!r} has per-row shape {list(per_row)}, "
                f"the signature says {list(output.shape)}"
            )


def _assert_same(expected: np.ndarray, got: np.ndarray, atol: float, rtol: float, message: str) -> None:
    expected = np.asarray(expected)
    got = np.asarray(got)
    if expected.shape != got.shape:
        raise AssertionError(f"{message}: shape {list(got.shape)} instead of {list(expected.shape)}")
    if expected.dtype.kind in "fc" and got.dtype.kind in "fc":
        close = np.isclose(got, expected, atol=atol, rtol=rtol, equal_nan=True)
        if close.all():
            return
        diff = np.abs(got - expected)
        gap = np.where(close, 0.0, np.where(np.isnan(diff), np.inf, diff))  # NaN against a number: worst of all
        worst = np.unravel_index(int(np.argmax(gap)), gap.shape) if gap.ndim else ()
        raise AssertionError(
            f"{message}: max abs diff {float(diff[worst]):.3g}{_at(worst)}, {_show(got[worst])} instead of "
            f"{_show(expected[worst])} (allowed {atol:g} + {rtol:g} × |value|)"
        )
    equal = expected == got
    if np.all(equal):
        return
    first = np.unravel_index(int(np.argmin(np.asarray(equal))), expected.shape) if expected.ndim else ()
    raise AssertionError(
        f"{message}: {_show(got[first])} instead of {_show(expected[first])}{_at(first)} (exact match expected)"
    )


def _at(index: tuple[Any, ...]) -> str:
    return f" at index {[int(i) for i in index]}" if index else ""


def _show(value: Any) -> str:
    return repr(value.tolist() if hasattr(value, "tolist") else value)
