from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from foretell.core.frame import Frame


def test_matrix_is_row_major_in_column_order():
    frame = Frame({"b": np.array([1.0, 2.0]), "a": np.array([3.0, 4.0])})
    assert frame.matrix().tolist() == [[1.0, 3.0], [2.0, 4.0]]
    assert list(frame) == ["b", "a"]


def test_columns_must_have_one_length():
    with pytest.raises(ValueError, match="column 'b' has 1 rows, expected 2"):
        Frame({"a": np.zeros(2), "b": np.zeros(1)})


@given(st.integers(min_value=0, max_value=50), st.integers(min_value=1, max_value=20))
def test_split_then_concat_gives_the_frame_back(n, size):
    frame = Frame({"x": np.arange(n, dtype=float), "v": np.arange(2 * n).reshape(n, 2)})
    parts = frame.split(size)
    assert all(p.n_rows <= size for p in parts)
    again = Frame.concat(parts)
    assert again.n_rows == n
    np.testing.assert_array_equal(again["x"], frame["x"])
    np.testing.assert_array_equal(again["v"], frame["v"])


def test_take_keeps_matrix_views():
    matrix = np.arange(6, dtype=float).reshape(3, 2)
    frame = Frame.from_matrix(matrix, ["a", "b"]).take(np.array([2, 0]))
    assert frame.matrix().tolist() == [[4.0, 5.0], [0.0, 1.0]]
