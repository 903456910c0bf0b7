"""Shared set-up for batch tests: a FORETELL_HOME with real models and real input files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from batchkit import FEATURES, SIGNATURE, SLOW_MODEL, make_rows

import foretell


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import joblib
    from sklearn.linear_model import LinearRegression

    home = tmp_path_factory.mktemp("batch-home")
    rows = make_rows(500, seed=1)
    x = np.column_stack([rows.column(n).to_numpy() for n in FEATURES])
    path = home.parent / "linear.joblib"
    joblib.dump(LinearRegression().fit(x, x @ [1.0, -2.0, 0.5, 3.0]), path)
    foretell.register("linear", path, signature=SIGNATURE, aliases=["production"], home=home)
    folder = home.parent / "slow"
    folder.mkdir()
    (folder / "slow.py").write_text(SLOW_MODEL)
    foretell.register(
        "slow",
        folder,
        flavor="python",
        signature=SIGNATURE,
        flavor_options={"class": "slow.py:SlowSum"},
        aliases=["production"],
        home=home,
    )
    return home


@pytest.fixture(scope="session")
def rows_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inputs") / "rows.parquet"
    pq.write_table(make_rows(10_000, seed=2), path, row_group_size=3_000)
    return path
