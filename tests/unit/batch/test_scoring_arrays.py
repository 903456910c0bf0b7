"""`arrow_array`: prediction columns as Arrow over their own memory, the same arrays `Predictions.to_arrow` makes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from foretell.batch.scoring import arrow_array
from foretell.core.predictor import Predictions
from foretell.core.schema import Output

COLUMNS = {
    "score": np.array([0.25, np.nan, 1e300, -0.0]),
    "label": np.array([1, 0, -3, 2**40], dtype=np.int64),
    "small": np.array([1, 2, 3, 4], dtype=np.int32),
    "single": np.array([0.5, 1.5, np.inf, 2.0], dtype=np.float32),
    "proba": np.array([[0.1, 0.9], [0.5, 0.5], [1.0, 0.0], [0.3, 0.7]]),
    "fortran": np.asfortranarray(np.arange(12, dtype=np.float64).reshape(4, 3)),
    "every_other": np.arange(8, dtype=np.float64)[::2],
    "names": np.array(["a", "b", "c", "d"], dtype=object),
    "flag": np.array([True, False, True, True]),
}


@pytest.mark.parametrize("name", COLUMNS)
def test_a_column_comes_out_as_predictions_to_arrow_makes_it(name: str) -> None:
    column = COLUMNS[name]
    expected = Predictions({name: column}, [Output(name, "score")], len(column)).to_arrow().column(name).chunk(0)
    got = arrow_array(column)
    assert got.type == expected.type
    assert got.null_count == expected.null_count == 0
    assert repr(got.to_pylist()) == repr(expected.to_pylist())  # NaN equal to NaN, -0.0 apart from 0.0


def test_a_type_given_is_laid_over_the_same_values() -> None:
    micros = np.array([0, 1_700_000_000_000_000], dtype=np.int64)
    got = arrow_array(micros, pa.timestamp("us", tz="UTC"))
    assert got.equals(pa.array(micros.astype("datetime64[us]"), pa.timestamp("us", tz="UTC")))
