"""`Frame`: the in-memory batch every prediction path passes around.

A frame is an ordered set of equally long numpy columns. It is deliberately smaller
than a DataFrame: building one costs a dict, not an index, which is what keeps the
single-row path within microseconds of the raw model call. A column may hold one value
per row (shape `(n,)`) or a fixed-size vector per row (shape `(n, k)`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence, ValuesView

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.generic]


class Frame(Mapping[str, Array]):
    """Named columns of one length, in a fixed order."""

    __slots__ = ("_columns", "_index", "_matrix", "n_rows")

    def __init__(self, columns: Mapping[str, Array], n_rows: int | None = None) -> None:
        self._columns: dict[str, Array] | None = dict(columns)
        if n_rows is None:
            n_rows = len(next(iter(self._columns.values()))) if self._columns else 0
        for name, column in self._columns.items():
            if len(column) != n_rows:
                raise ValueError(f"column {name!r} has {len(column)} rows, expected {n_rows}")
        self.n_rows = n_rows
        self._matrix: np.ndarray | None = None
        self._index: Mapping[str, int] | None = None

    @classmethod
    def from_matrix(cls, matrix: np.ndarray, names: Sequence[str], index: Mapping[str, int] | None = None) -> Frame:
        """Columns as views of one 2-D array, which `matrix()` hands back without a copy.

        Column views are made on first access: a one-row frame for a model that wants the
        matrix anyway should not pay for thirty views it never reads. `index` (name →
        position, shared and never mutated) saves rebuilding it on every call.
        """
        if matrix.ndim != 2 or matrix.shape[1] != len(names):
            raise ValueError(f"a {matrix.shape} array cannot hold the {len(names)} columns {list(names)}")
        frame = cls.__new__(cls)
        frame._columns = None
        frame._index = index if index is not None else {name: i for i, name in enumerate(names)}
        frame._matrix = matrix
        frame.n_rows = matrix.shape[0]
        return frame

    def __getitem__(self, name: str) -> Array:
        if self._columns is not None:
            return self._columns[name]
        assert self._index is not None
        assert self._matrix is not None
        return self._matrix[:, self._index[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns if self._columns is not None else self._index or ())

    def __len__(self) -> int:
        return len(self._columns if self._columns is not None else self._index or ())

    def values(self) -> ValuesView[Array]:
        if self._columns is not None:  # the dict's own view: Mapping's would look up each name
            return self._columns.values()
        return super().values()

    def __repr__(self) -> str:
        return f"Frame({self.n_rows} rows × {list(self)})"

    def matrix(self, dtype: npt.DTypeLike = np.float64) -> np.ndarray:
        """All columns side by side as one 2-D array (rows × columns).

        Most frameworks want exactly this; when the frame was built from such an array it
        is returned as is, in the memory order it has (coercion builds column-major
        matrices, which tree ensembles read as fast). A framework that needs C order
        asks numpy for it.
        """
        wanted = np.dtype(dtype)
        if self._matrix is not None:
            return self._matrix if self._matrix.dtype == wanted else self._matrix.astype(wanted)
        assert self._columns is not None
        out = np.empty((len(self._columns), self.n_rows), dtype=wanted)
        for i, column in enumerate(self._columns.values()):
            out[i] = column
        return out.T

    def take(self, rows: npt.NDArray[np.intp] | slice) -> Frame:
        """The given rows, in the given order."""
        if self._matrix is not None:
            return Frame.from_matrix(self._matrix[rows], list(self), self._index)
        taken = {name: self[name][rows] for name in self}
        n = len(range(self.n_rows)[rows]) if isinstance(rows, slice) else len(rows)
        return Frame(taken, n_rows=n)

    def split(self, size: int) -> list[Frame]:
        """Consecutive chunks of at most `size` rows; concatenating them gives this frame back."""
        if size < 1:
            raise ValueError(f"chunk size must be at least 1, got {size}")
        return [self.take(slice(start, start + size)) for start in range(0, self.n_rows, size)] or [self]

    @staticmethod
    def concat(frames: Sequence[Frame]) -> Frame:
        """Rows of every frame, in order; all frames must have the same columns."""
        if not frames:
            raise ValueError("nothing to concatenate")
        if len(frames) == 1:
            return frames[0]
        names = list(frames[0])
        for frame in frames[1:]:
            if list(frame) != names:
                raise ValueError(f"cannot concatenate frames with columns {list(frame)} and {names}")
        if all(f._matrix is not None for f in frames):
            return Frame.from_matrix(np.concatenate([f._matrix for f in frames if f._matrix is not None]), names)
        columns = {name: np.concatenate([f[name] for f in frames]) for name in names}
        return Frame(columns, n_rows=sum(f.n_rows for f in frames))
