"""Reference profiles from the command line: stored at registration, shown, recomputed from a sample."""

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
        [sys.executable, "-m", "foretell", *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("profiles")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 2))
    model = HistGradientBoostingClassifier(max_iter=20).fit(x, (x[:, 0] + x[:, 1] > 0).astype(int))
    joblib.dump(model, folder / "clf.joblib")  # takes missing values, as the sample has
    tenure = np.where(np.arange(500) % 10 == 0, np.nan, x[:, 0] * 10 + 40)
    pq.write_table(pa.table({"tenure": tenure, "spend": x[:, 1]}), folder / "sample.parquet")
    pq.write_table(pa.table({"tenure": tenure + 30, "spend": x[:, 1]}).slice(0, 300), folder / "later.parquet")
    return {"model": folder / "clf.joblib", "sample": folder / "sample.parquet", "later": folder / "later.parquet"}


def test_registration_stores_a_profile_that_models_show_summarises(files: dict[str, Path], tmp_path: Path) -> None:
    home = tmp_path / "home"
    registered = run(home, "models", "register", "clf", str(files["model"]), "--sample", str(files["sample"]))
    assert registered.returncode == 0, registered.stderr
    shown = json.loads(run(home, "models", "show", "clf/1", "--json").stdout)
    profile = shown["profile"]
    assert (profile["rows"], profile["source"], profile["version"]) == (500, "sample", 1)
    assert profile["inputs"]["tenure"]["missing_rate"] == 0.1
    assert set(profile["outputs"]) == {"score", "label", "proba"}

    table = run(home, "models", "show", "clf/1")
    assert table.returncode == 0, table.stderr
    assert "profile     500 rows from the registration sample" in table.stdout
    median = np.nanpercentile(pq.read_table(files["sample"])["tenure"].to_numpy(), 50, method="inverted_cdf")
    [tenure_line] = [line for line in table.stdout.splitlines() if "tenure" in line and "%" in line]
    assert "10.0%" in tenure_line and f"{median:.4g}" in tenure_line
    assert any("score" in line and "p50" not in line for line in table.stdout.splitlines())


def test_models_profile_recomputes_it_from_a_sample(files: dict[str, Path], tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run(home, "models", "register", "clf", str(files["model"]), "--sample", str(files["sample"])).returncode == 0
    made = run(home, "models", "profile", "clf", "--sample", str(files["later"]), "--json")
    assert made.returncode == 0, made.stderr
    profile = json.loads(made.stdout)
    assert profile["rows"] == 300 and profile["inputs"]["tenure"]["quantiles"][50] > 60
    assert json.loads(run(home, "models", "show", "clf", "--json").stdout)["profile"] == profile
    printed = run(home, "models", "profile", "clf/1", "--sample", str(files["sample"]))
    assert printed.returncode == 0 and "profile     500 rows from the registration sample" in printed.stdout


def test_a_version_registered_before_profiles_says_how_to_make_one(files: dict[str, Path], tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run(home, "models", "register", "clf", str(files["model"]), "--no-compile").returncode == 0
    (home / "profiles" / "clf" / "1.json").unlink()  # what a home from before profiles holds
    shown = run(home, "models", "show", "clf/1")
    assert "profile     no profile (foretell models profile models:/clf/1)" in shown.stdout
    assert json.loads(run(home, "models", "show", "clf/1", "--json").stdout)["profile"] is None
    remade = run(home, "models", "profile", "clf/1", "--json")  # from the rows a compile would prove on
    assert remade.returncode == 0, remade.stderr
    assert json.loads(remade.stdout)["source"] == "validation"


def test_a_sample_without_the_model_s_columns_is_a_one_line_error(files: dict[str, Path], tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run(home, "models", "register", "clf", str(files["model"]), "--sample", str(files["sample"])).returncode == 0
    wrong = tmp_path / "wrong.parquet"
    pq.write_table(pa.table({"other": [1.0, 2.0]}), wrong)
    failed = run(home, "models", "profile", "clf/1", "--sample", str(wrong))
    assert failed.returncode != 0
    assert failed.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "tenure" in failed.stderr and "Traceback" not in failed.stderr


def test_models_profile_has_help_with_examples(tmp_path: Path) -> None:
    shown = run(tmp_path / "home", "models", "profile", "--help")
    assert shown.returncode == 0 and "Example" in shown.stdout and "--sample" in shown.stdout
