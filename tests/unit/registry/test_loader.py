"""The loader: a registry record becomes a `Model`; a `ModelSource` pins a version and travels between processes."""

from __future__ import annotations

import pickle
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from foretell.errors import ArtifactIntegrityError, InvalidInput
from foretell.registry import SqliteRegistry, load_model, model_source


def _register(registry: SqliteRegistry, folder: Path, slope: float, aliases: list[str]) -> None:
    x = np.arange(20, dtype=np.float64).reshape(-1, 1)
    path = folder / f"model-{slope}.joblib"
    joblib.dump(LinearRegression().fit(x, slope * x[:, 0]), path)
    registry.register("line", path, aliases=aliases)


@pytest.fixture
def registry(tmp_path: Path) -> SqliteRegistry:
    registry = SqliteRegistry(tmp_path / "home")
    _register(registry, tmp_path, 2.0, ["production"])
    return registry


def test_a_source_keeps_the_version_it_was_resolved_to(registry: SqliteRegistry, tmp_path: Path) -> None:
    source = model_source(registry, "line@production")
    _register(registry, tmp_path, 3.0, ["production"])  # the alias moves on
    assert (source.uri, source.load().info.version) == ("models:/line/1", 1)
    assert load_model(registry, "line@production").info.version == 2


def test_a_source_survives_pickling_and_loads_the_same_model(registry: SqliteRegistry) -> None:
    source = model_source(registry, "line/1", predictor="original")
    copy = pickle.loads(pickle.dumps(source))
    assert copy == source
    model = copy.load()
    assert model.variant == "original"
    assert model.predict([4.0])["score"] == pytest.approx(8.0)


def test_a_source_names_its_home_absolutely(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    registry = SqliteRegistry(Path("relative-home"))
    _register(registry, tmp_path, 2.0, [])
    source = model_source(registry, "line")
    assert source.home == tmp_path / "relative-home"
    monkeypatch.chdir("/")  # a worker started elsewhere finds the registry all the same
    assert source.load().info.version == 1


def test_the_artifact_is_checked_when_a_source_loads(registry: SqliteRegistry) -> None:
    source = model_source(registry, "line/1")
    path = registry.artifact_path(source.info)
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ArtifactIntegrityError, match="line/1"):
        source.load()


def test_an_unknown_predictor_choice_is_refused(registry: SqliteRegistry) -> None:
    with pytest.raises(InvalidInput, match="predictor must be one of auto, original, compiled"):
        model_source(registry, "line/1", predictor="fast")  # type: ignore[arg-type]
