"""`Predictor`: a loaded model held to its signature, and `Predictions`, what it returns.

Whatever a flavor's framework does inside, a `Predictor` promises the caller one thing:
N rows in, N rows out, with every output the signature names, in its dtype. A model
that breaks that promise, or raises, becomes a `PredictionError` naming the model, not
an `IndexError` three frames later in someone else's code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, overload

import numpy as np

from foretell.core.frame import Array, Frame
from foretell.core.schema import Output, Signature
from foretell.errors import ForetellError, PredictionError

__all__ = ["NO_OPTIONS", "TOPK_KINDS", "LoadedModel", "PredictOptions", "Predictions", "Predictor"]

TOPK_KINDS = ("topk_items", "topk_scores")
"""Output kinds whose rows are lists of length `k` (a recommender's items and their scores)."""


@dataclass(frozen=True, slots=True)
class PredictOptions:
    """Per-call knobs a model may honour. `k` is the number of items a top-k model returns."""

    k: int | None = None


NO_OPTIONS = PredictOptions()
"""The options of a plain prediction: one shared object, so code on the request path compares by identity."""


class LoadedModel(Protocol):
    """What a flavor hands back from `load`: a vectorized predict over validated columns."""

    def predict(self, frame: Frame, options: PredictOptions) -> Mapping[str, Array]: ...


class Predictions(Sequence[dict[str, Any]]):
    """Named output arrays, one entry per input row; `predictions[i]` is row i as a dict."""

    __slots__ = ("_columns", "_n", "outputs")

    def __init__(self, columns: Mapping[str, Array], outputs: Sequence[Output], n_rows: int) -> None:
        self._columns = dict(columns)
        self.outputs = tuple(outputs)
        self._n = n_rows

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> Predictions: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | Predictions:
        if isinstance(index, slice):
            taken = {name: column[index] for name, column in self._columns.items()}
            return Predictions(taken, self.outputs, len(range(self._n)[index]))
        if not -self._n <= index < self._n:
            raise IndexError(f"row {index} out of range for {self._n} predictions")
        return {name: _plain(column[index]) for name, column in self._columns.items()}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        yield from self.to_records()

    def __repr__(self) -> str:
        return f"Predictions({self._n} rows × {list(self._columns)})"

    @property
    def columns(self) -> dict[str, Array]:
        """Output name → array with one entry (or one row of k entries) per input row."""
        return dict(self._columns)

    def column(self, name: str) -> Array:
        return self._columns[name]

    def to_records(self) -> list[dict[str, Any]]:
        """One plain-Python dict per row (JSON-ready: floats, ints, strings, lists)."""
        lists = {name: column.tolist() for name, column in self._columns.items()}
        return [{name: values[i] for name, values in lists.items()} for i in range(self._n)]

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame({n: list(c) if c.ndim > 1 else c for n, c in self._columns.items()})

    def to_arrow(self) -> Any:
        import pyarrow as pa

        arrays = {}
        for name, column in self._columns.items():
            if column.ndim > 1:
                flat = pa.array(column.reshape(-1))
                arrays[name] = pa.FixedSizeListArray.from_arrays(flat, column.shape[1])
            else:
                arrays[name] = pa.array(column)
        return pa.table(arrays)

    @staticmethod
    def concat(parts: Sequence[Predictions]) -> Predictions:
        if not parts:
            raise ValueError("nothing to concatenate")
        names = list(parts[0]._columns)
        columns = {n: np.concatenate([p._columns[n] for p in parts]) for n in names}
        return Predictions(columns, parts[0].outputs, sum(len(p) for p in parts))


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else value


class Predictor:
    """A loaded model plus the checks that make its outputs trustworthy."""

    __slots__ = ("_loaded", "name", "signature")

    def __init__(self, loaded: LoadedModel, signature: Signature, name: str = "model") -> None:
        self._loaded = loaded
        self.signature = signature
        self.name = name

    @property
    def loaded(self) -> LoadedModel:
        return self._loaded

    def predict(self, frame: Frame, options: PredictOptions | None = None) -> Predictions:
        """Run the model once on every row of `frame` (already validated by `Signature.coerce`)."""
        options = options or PredictOptions()
        n = frame.n_rows
        if n == 0:
            return self._empty(options)
        try:
            raw = self._loaded.predict(frame, options)
        except ForetellError:
            raise
        except Exception as exc:
            raise PredictionError(
                f"model {self.name!r} failed on a batch of {n} rows: {type(exc).__name__}: {exc}"
            ) from exc
        columns: dict[str, Array] = {}
        for output in self.signature.outputs:
            if output.name not in raw:
                raise PredictionError(
                    f"model {self.name!r} returned outputs {sorted(raw)}, missing {output.name!r} from its signature"
                )
            columns[output.name] = self._checked(output, np.asarray(raw[output.name]), n)
        return Predictions(columns, self.signature.outputs, n)

    def _checked(self, output: Output, array: Array, n: int) -> Array:
        if array.ndim == 0 or len(array) != n:
            got = "a scalar" if array.ndim == 0 else f"{len(array)} rows"
            raise PredictionError(f"model {self.name!r}: {n} rows in, {got} out for output {output.name!r}")
        per_row = array.shape[1:]
        topk = output.kind in TOPK_KINDS
        if (topk and len(per_row) != 1) or (not topk and per_row != output.shape):
            raise PredictionError(
                f"model {self.name!r}: output {output.name!r} has per-row shape {list(per_row)}, "
                f"its signature says {list(output.shape)}"
            )
        dtype = np.dtype(object if output.dtype == "string" else output.dtype)
        # Same type, not merely an equal one: numpy's longlong equals int64 but is another
        # scalar type (ONNX Runtime returns it), which JSON encoders do not know.
        return array if array.dtype.type is dtype.type else array.astype(dtype)

    def _empty(self, options: PredictOptions) -> Predictions:
        columns = {}
        for output in self.signature.outputs:
            shape = output.shape
            if output.kind in TOPK_KINDS:
                shape = (options.k or (output.shape[0] if output.shape else 0),)
            columns[output.name] = np.empty((0, *shape), dtype=object if output.dtype == "string" else output.dtype)
        return Predictions(columns, self.signature.outputs, 0)
