"""A batch job with a compiled tree ensemble on float32 Parquet: the fast path's output is the one prediction path's.

The job reads float32 features (with nulls, and one infinite value to refuse), scores them
with the compiled library on threads, and writes parts built from the predictions' own
buffers. Each part must hold exactly what `Model.predict_batch(...).to_arrow()` gives for
the same rows, with the same Arrow types, and the job must never import pandas (pyarrow's
numpy conversions do, a third of a second of every job).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import foretell

FEATURES = [f"x{i}" for i in range(8)]
ROWS = 5_000
INFINITE_ROW = 1_234


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import joblib
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    home = tmp_path_factory.mktemp("compiled-batch-home")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2_000, len(FEATURES))).astype(np.float32)
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=20, early_stopping=False, random_state=0)
    model.fit(pd.DataFrame(x, columns=FEATURES), y)
    joblib.dump(model, home.parent / "trees.joblib")
    info = foretell.register("trees", home.parent / "trees.joblib", flavor="sklearn", home=home)
    assert info.compiled is not None
    assert info.compiled["status"] == "passed", info.compiled
    return home


def float32_rows(path: Path, infinite: bool = True) -> pa.Table:
    rng = np.random.default_rng(4)
    columns: dict[str, pa.Array] = {"id": pa.array(np.arange(ROWS, dtype=np.int64) * 7)}
    for i, name in enumerate(FEATURES):
        values = rng.normal(size=ROWS).astype(np.float32)
        if i == 3 and infinite:
            values[INFINITE_ROW] = np.inf  # refused: a missing value is allowed, an infinite one never
        columns[name] = pa.array(values, mask=(np.arange(ROWS) % 97 == i) if i < 2 else None)
    table = pa.table(columns)
    pq.write_table(table, path, row_group_size=1_500)
    return table


def run_job(home: Path, rows: Path, output: Path) -> tuple[dict[str, object], set[str]]:
    """`foretell batch run` as a user runs it: its JSON summary, and every module it imported."""
    job = ["batch", "run", "trees/1", "--input", str(rows), "--output", str(output), "--chunk-rows", "1000", "--json"]
    ran = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "foretell", *job],
        capture_output=True,
        text=True,
        env={**os.environ, "FORETELL_HOME": str(home)},
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in ran.stderr.splitlines() if line.startswith("import time")}
    summary: dict[str, object] = json.loads(ran.stdout)
    return summary, imported


def test_a_compiled_job_imports_no_pandas(trees: Path, tmp_path: Path) -> None:
    float32_rows(tmp_path / "rows.parquet", infinite=False)
    summary, imported = run_job(trees, tmp_path / "rows.parquet", tmp_path / "out")
    assert (summary["predictor"], summary["scored"], summary["rejected"]) == ("compiled", ROWS, 0)
    assert "pyarrow.parquet" in imported  # the check sees the job's imports
    assert "pandas" not in imported, "the job imported pandas"


def test_a_compiled_job_writes_what_the_prediction_path_gives(trees: Path, tmp_path: Path) -> None:
    table = float32_rows(tmp_path / "rows.parquet")
    output = tmp_path / "out"
    summary, _ = run_job(trees, tmp_path / "rows.parquet", output)
    assert (summary["predictor"], summary["rows"], summary["rejected"]) == ("compiled", ROWS, 1)

    parts = pq.read_table(output).sort_by("id")
    kept = np.delete(np.arange(ROWS), INFINITE_ROW)
    model = foretell.load("trees/1", home=trees)
    assert model.variant != "original"
    expected = model.predict_batch(table.take(pa.array(kept)).select(FEATURES)).to_arrow()
    assert parts.column_names == ["id", *expected.column_names, "model_version", "predicted_at"]
    assert parts.column("id").to_pylist() == (kept * 7).tolist()
    for name in expected.column_names:
        assert parts.schema.field(name).type == expected.schema.field(name).type, name
        assert parts.column(name).equals(expected.column(name)), name
    assert parts.schema.field("model_version").type == pa.int64()
    assert set(parts.column("model_version").to_pylist()) == {1}
    assert parts.schema.field("predicted_at").type == pa.timestamp("us", tz="UTC")
    assert len(set(parts.column("predicted_at").to_pylist())) == 1

    rejects = pq.read_table(output / "_rejects")
    assert rejects.column("id").to_pylist() == [INFINITE_ROW * 7]
    assert rejects.column("row_in_chunk").to_pylist() == [INFINITE_ROW % 1000]
    assert "x3" in rejects.column("reason")[0].as_py()
