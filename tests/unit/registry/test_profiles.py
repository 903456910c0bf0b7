"""Reference profiles beside the registry: stored atomically, computed from a sample or the validation rows."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from foretell import api
from foretell.errors import InvalidInput, RegistryError
from foretell.profiles import CategoricalProfile, NumericProfile
from foretell.registry import SqliteRegistry
from foretell.registry.loader import profile_registered, profile_version
from foretell.registry.profiles import ProfileStore


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2))
    path = tmp_path / "clf.joblib"
    joblib.dump(LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)), path)
    return path


def _sample(rows: int = 400, shift: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(1)
    return pa.table({"a": rng.normal(shift, 1, rows), "b": rng.normal(0, 1, rows)})


def test_registration_stores_a_profile_of_the_sample_and_the_model_s_outputs(model_file: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    info = api.register("clf", model_file, sample=_sample(), compile=False, home=home)
    profile = ProfileStore(home).load("clf", info.version)
    assert profile is not None and api.stored_profile("clf/1", home=home) == profile
    assert (profile.model, profile.version, profile.rows, profile.source) == ("clf", 1, 400, "sample")
    assert set(profile.inputs) == {"a", "b"} and set(profile.outputs) == {"score", "label", "proba"}
    score, label = profile.outputs["score"], profile.outputs["label"]
    assert isinstance(score, NumericProfile) and isinstance(label, CategoricalProfile)
    expected = joblib.load(model_file).predict_proba(np.column_stack([_sample()["a"], _sample()["b"]]))
    assert score.median == pytest.approx(float(np.percentile(expected[:, 1], 50, method="inverted_cdf")))
    assert (home / "profiles" / "clf" / "1.json").stat().st_mode & 0o777 == 0o644


def test_without_a_sample_the_validation_rows_are_profiled(model_file: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    api.register("clf", model_file, home=home)  # compiled: its proof's rows are kept with the build
    profile = api.stored_profile("clf", home=home)
    assert profile is not None and profile.source == "validation" and profile.rows >= 10_000


def test_refused_sample_rows_are_skipped(model_file: Path, tmp_path: Path) -> None:
    registry = SqliteRegistry(tmp_path / "home")
    info = registry.register("clf", model_file, sample=_sample())
    rows = [{"a": 1.0, "b": 2.0}, {"a": "not a number", "b": 1.0}, {"a": 0.5, "b": None}]
    assert profile_version(registry, info, sample=rows).rows == 1


def test_a_failed_profile_is_logged_and_the_version_stays_registered(
    model_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = SqliteRegistry(tmp_path / "home")
    info = registry.register("clf", model_file, sample=_sample())
    with pytest.raises(InvalidInput, match="no row of the sample fits"):
        profile_version(registry, info, sample=[{"a": "x", "b": "y"}])
    with caplog.at_level(logging.WARNING, logger="foretell.compile"):
        assert profile_registered(registry, info, sample=[{"a": "x", "b": "y"}]) is None
    assert "models:/clf/1 was registered without a reference profile: no row of the sample fits" in caplog.text
    assert ProfileStore(registry.home).load("clf", 1) is None and registry.get("clf/1").version == 1


def test_profile_model_recomputes_and_replaces_the_stored_one(model_file: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    api.register("clf", model_file, sample=_sample(), compile=False, home=home)
    again = api.profile_model("clf/1", sample=_sample(rows=1000, shift=2.0), home=home)
    assert again.rows == 1000 and api.stored_profile("clf/1", home=home) == again
    assert again.inputs["a"].median > 1.5  # type: ignore[union-attr]


def test_the_store_round_trips_and_refuses_what_it_cannot_read(model_file: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    api.register("clf", model_file, sample=_sample(), compile=False, home=home)
    store = ProfileStore(home)
    profile = store.load("clf", 1)
    assert profile is not None
    store.save(profile)
    assert store.load("clf", 1) == profile
    assert [p.name for p in (home / "profiles" / "clf").iterdir()] == ["1.json"]  # no staged file left behind
    assert store.load("clf", 2) is None
    (home / "profiles" / "clf" / "1.json").write_text(json.dumps({"model": "clf"}))
    with pytest.raises(RegistryError, match=r"the profile of clf/1 \(.*1\.json\) cannot be read"):
        store.load("clf", 1)
    with pytest.raises(RegistryError, match="cannot name a profile file"):
        store.path_of("../etc", 1)
