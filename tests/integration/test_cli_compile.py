"""`foretell models compile`, compile-at-registration and `--predictor`, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FORETELL_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "foretell", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2_000, 4))
    x[rng.random(2_000) < 0.05, 2] = np.nan
    y = (x[:, 0] - x[:, 1] > 0).astype(int)
    folder = tmp_path_factory.mktemp("files")
    joblib.dump(HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(x, y), folder / "trees.joblib")
    table = pa.table({"id": np.arange(2_000), **{f"f{i}": x[:, i] for i in range(4)}})
    pq.write_table(table, folder / "rows.parquet")
    return folder / "trees.joblib", folder / "rows.parquet"


def test_register_compiles_and_show_tells(tmp_path: Path, files: tuple[Path, Path]) -> None:
    model, _ = files
    registered = run(tmp_path, "models", "register", "trees", str(model))
    assert registered.returncode == 0, registered.stderr
    assert "registered models:/trees/1 [sklearn]" in registered.stdout
    assert "compiled with treelite (bit-vector tables): parity passed on 16,384 rows" in registered.stdout
    assert "tl2cgen" not in registered.stdout + registered.stderr  # the compiler's chatter is not the user's

    shown = run(tmp_path, "models", "show", "trees")
    assert shown.returncode == 0, shown.stderr
    assert "predictor   compiled with treelite" in shown.stdout
    assert "measured while compiling" in shown.stdout and "1 row" in shown.stdout
    info = json.loads(run(tmp_path, "models", "show", "trees", "--json").stdout)
    assert info["compiled"]["status"] == "passed"
    assert info["compiled"]["speed"]["speedup"]["single_row"] > 1


def test_no_compile_then_compile_with_a_sample_and_a_tolerance(tmp_path: Path, files: tuple[Path, Path]) -> None:
    model, rows = files
    registered = run(tmp_path, "models", "register", "trees", str(model), "--no-compile", "--json")
    assert registered.returncode == 0, registered.stderr
    assert json.loads(registered.stdout)["compiled"] is None
    assert "never compiled" in run(tmp_path, "models", "show", "trees").stdout

    strict = run(tmp_path, "models", "compile", "trees", "--tolerance", "0", "--json")
    assert strict.returncode == 0, strict.stderr
    outcome = json.loads(strict.stdout)
    assert outcome["status"] == "failed" and outcome["uri"] == "models:/trees/1"
    assert "keeps its original predictor" in run(tmp_path, "models", "show", "trees").stdout

    proven = run(tmp_path, "models", "compile", "trees", "--sample", str(rows), "--rows", "12000")
    assert proven.returncode == 0, proven.stderr
    assert "compiled with treelite (bit-vector tables): parity passed on 12,000 rows" in proven.stdout
    assert "measured while compiling" in proven.stdout

    out = run(tmp_path, "predict", "trees", "--input", str(rows), "--id-column", "id", "--json", "--limit", "3")
    original = run(
        tmp_path, "predict", "trees", "--input", str(rows), "--id-column", "id", "--json", "--predictor", "original"
    )
    assert out.returncode == 0 and original.returncode == 0, out.stderr + original.stderr
    compiled_scores = [row["score"] for row in json.loads(out.stdout)]
    original_scores = [row["score"] for row in json.loads(original.stdout)]
    assert np.allclose(compiled_scores, original_scores, rtol=0, atol=1e-6)

    wrong = run(tmp_path, "predict", "trees", "--input", str(rows), "--predictor", "fastest")
    assert wrong.returncode == 1
    assert "predictor must be one of auto, original, compiled" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_batch_run_uses_the_compiled_predictor_and_matches_real_time(tmp_path: Path, files: tuple[Path, Path]) -> None:
    """Batch and real time load the same predictor: their answers are identical, not merely close."""
    model, rows = files
    assert run(tmp_path, "models", "register", "trees", str(model)).returncode == 0
    for predictor in ("auto", "original"):
        job = run(
            tmp_path,
            "batch",
            "run",
            "trees",
            "--input",
            str(rows),
            "--output",
            str(tmp_path / predictor),
            "--id-column",
            "id",
            "--predictor",
            predictor,
            "--json",
        )
        assert job.returncode == 0, job.stderr
        assert json.loads(job.stdout)["predictor"] == ("compiled" if predictor == "auto" else "original")
    import foretell

    compiled = foretell.load("trees", home=tmp_path)
    assert compiled.variant == "treelite"
    table = pq.read_table(tmp_path / "auto").sort_by("id")
    live = compiled.predict_batch(pq.read_table(rows).select([f"f{i}" for i in range(4)]))
    assert table.column("score").to_numpy().tolist() == live.column("score").tolist()
    slow = pq.read_table(tmp_path / "original").sort_by("id").column("score").to_numpy()
    assert np.abs(slow - table.column("score").to_numpy()).max() <= 1e-6


def test_compile_help_has_an_example(tmp_path: Path) -> None:
    shown = run(tmp_path, "models", "compile", "--help")
    assert shown.returncode == 0 and "Example" in shown.stdout and "--tolerance" in shown.stdout
