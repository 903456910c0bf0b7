"""The registry contract, run against every backend (today: SQLite).

Real files, real scikit-learn models, a real database: what a user's registry does.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from foretell.core.feature import Feature
from foretell.core.schema import Output, Signature
from foretell.errors import (
    AliasNotFound,
    ArtifactIntegrityError,
    InvalidModelURI,
    InvalidSignature,
    ModelNotFound,
    RegistryError,
    VersionNotFound,
)
from foretell.registry import ModelRef, Registry, SqliteRegistry, load_model, open_registry


class SteppingClock:
    """Each call is one second after the last, so timestamps are exact and ordered."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


BACKENDS: dict[str, Callable[[Path], Registry]] = {
    "sqlite": lambda home: SqliteRegistry(home, clock=SteppingClock()),
}


@pytest.fixture(params=sorted(BACKENDS))
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Registry:
    return BACKENDS[request.param](tmp_path / "home")


def _classifier(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(50, 3))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    joblib.dump(LogisticRegression().fit(x, y), path)
    return path


@pytest.fixture
def clf_v1(tmp_path: Path) -> Path:
    return _classifier(tmp_path / "clf.joblib", seed=1)


@pytest.fixture
def clf_v2(tmp_path: Path) -> Path:
    (tmp_path / "v2").mkdir()
    return _classifier(tmp_path / "v2" / "clf.joblib", seed=2)


# -- register and show --------------------------------------------------------------------


def test_register_numbers_versions_and_records_what_show_needs(registry: Registry, clf_v1: Path, clf_v2: Path) -> None:
    first = registry.register("churn", clf_v1, description="first try", metadata={"auc": 0.81, "team": "growth"})
    second = registry.register("churn", clf_v2)
    assert (first.version, second.version) == (1, 2)
    assert first.name == "churn"
    assert first.uri == "models:/churn/1"
    assert first.flavor == "sklearn"
    assert first.sha256 == hashlib.sha256(clf_v1.read_bytes()).hexdigest()
    assert first.size_bytes == clf_v1.stat().st_size
    assert first.created_at == "2024-05-01T12:00:01.000Z"
    assert second.created_at > first.created_at
    assert first.description == "first try"
    assert dict(first.metadata) == {"auc": 0.81, "team": "growth"}
    assert set(first.framework_versions) >= {"scikit-learn", "joblib"}
    assert first.signature.input_names == ["f0", "f1", "f2"]
    assert first.signature.output_names == ["score", "label", "proba"]
    assert registry.get("churn/1") == first
    assert registry.get("churn") == second


def test_registered_model_predicts_like_the_original(registry: Registry, clf_v1: Path) -> None:
    registry.register("churn", clf_v1)
    original = joblib.load(clf_v1)
    rows = np.random.default_rng(9).normal(size=(7, 3))
    predicted = load_model(registry, "churn").predict_batch(rows)
    np.testing.assert_allclose(np.asarray(predicted.column("proba"), dtype=float), original.predict_proba(rows))
    assert predicted[0]["label"] == original.predict(rows[:1])[0]


def test_state_survives_reopening_the_home(tmp_path: Path, clf_v1: Path) -> None:
    home = tmp_path / "home"
    open_registry(home).register("churn", clf_v1, aliases=["production"])
    reopened = open_registry(home)
    assert reopened.get("churn@production").version == 1
    assert load_model(reopened, "models:/churn@production").info.name == "churn"


def test_the_database_uses_write_ahead_logging(tmp_path: Path) -> None:
    open_registry(tmp_path / "home")
    conn = sqlite3.connect(tmp_path / "home" / "registry.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


# -- URIs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "version"),
    [
        ("models:/churn/1", 1),
        ("models:/churn/2", 2),
        ("churn/1", 1),
        ("models:/churn@production", 1),
        ("churn@production", 1),
        ("churn@staging", 2),
        ("models:/churn/latest", 2),
        ("churn", 2),
    ],
)
def test_every_uri_form_resolves(registry: Registry, clf_v1: Path, clf_v2: Path, uri: str, version: int) -> None:
    registry.register("churn", clf_v1, aliases=["production"])
    registry.register("churn", clf_v2, aliases=["staging"])
    assert registry.get(uri).version == version
    assert load_model(registry, uri).info.version == version


def test_get_accepts_a_model_ref(registry: Registry, clf_v1: Path) -> None:
    registry.register("churn", clf_v1)
    assert registry.get(ModelRef("churn", version=1)).version == 1  # type: ignore[arg-type]


# -- aliases ------------------------------------------------------------------------------


def test_aliases_set_move_and_delete(registry: Registry, clf_v1: Path, clf_v2: Path) -> None:
    registry.register("churn", clf_v1, aliases=["production", "staging"])
    registry.register("churn", clf_v2)
    assert registry.get("churn/1").aliases == ("production", "staging")

    registry.set_alias("churn", "production", 2)
    assert registry.get("churn@production").version == 2
    assert registry.get("churn/1").aliases == ("staging",)
    assert registry.get("churn/2").aliases == ("production",)

    registry.set_alias("churn", "shadow-2024_a", 1)
    assert registry.get("churn@shadow-2024_a").version == 1

    registry.delete_alias("churn", "staging")
    with pytest.raises(AliasNotFound):
        registry.get("churn@staging")
    assert registry.get("churn/1").aliases == ("shadow-2024_a",)


def test_alias_errors_name_what_exists(registry: Registry, clf_v1: Path) -> None:
    registry.register("churn", clf_v1, aliases=["production"])
    with pytest.raises(AliasNotFound, match=r"model 'churn' has no alias 'prod'; its aliases: production → 1"):
        registry.get("churn@prod")
    with pytest.raises(AliasNotFound, match="no alias 'staging'"):
        registry.delete_alias("churn", "staging")
    with pytest.raises(VersionNotFound, match="no version 5; its versions: 1"):
        registry.set_alias("churn", "staging", 5)
    with pytest.raises(ModelNotFound, match="no model named 'fraud'"):
        registry.set_alias("fraud", "staging", 1)


@pytest.mark.parametrize("alias", ["latest", "7", "1st", "_x", "a b", "a.b"])
def test_bad_alias_names_are_refused(registry: Registry, clf_v1: Path, alias: str) -> None:
    registry.register("churn", clf_v1)
    with pytest.raises(RegistryError, match="alias"):
        registry.set_alias("churn", alias, 1)
    with pytest.raises(RegistryError, match="alias"):
        registry.register("churn", clf_v1, aliases=[alias])
    assert registry.get("churn").version == 1  # a refused registration records nothing


# -- listing ------------------------------------------------------------------------------


def test_list_models_and_versions(registry: Registry, clf_v1: Path, clf_v2: Path) -> None:
    assert registry.list_models() == []
    registry.register("fraud", clf_v1, description="fraud v1")
    registry.register("churn", clf_v1, aliases=["production"])
    registry.register("churn", clf_v2, description="retrained", aliases=["staging"])

    summaries = registry.list_models()
    assert [s.name for s in summaries] == ["churn", "fraud"]
    churn = summaries[0]
    assert (churn.latest_version, churn.version_count) == (2, 2)
    assert dict(churn.aliases) == {"production": 1, "staging": 2}
    assert churn.description == "retrained"
    assert churn.updated_at == "2024-05-01T12:00:03.000Z"
    assert churn.to_dict()["aliases"] == {"production": 1, "staging": 2}

    versions = registry.list_versions("churn")
    assert [(v.version, v.aliases) for v in versions] == [(1, ("production",)), (2, ("staging",))]
    with pytest.raises(ModelNotFound):
        registry.list_versions("nope")


# -- deleting -----------------------------------------------------------------------------


def _stored_files(registry: Registry) -> list[Path]:
    return sorted(p for p in (registry.home / "artifacts" / "sha256").rglob("*") if p.is_file())


def test_delete_version_removes_it_its_aliases_and_its_unshared_artifact(
    registry: Registry, clf_v1: Path, clf_v2: Path
) -> None:
    registry.register("churn", clf_v1)
    registry.register("churn", clf_v2, aliases=["production"])
    assert len(_stored_files(registry)) == 2

    registry.delete_version("churn", 2)
    with pytest.raises(VersionNotFound, match="no version 2; its versions: 1"):
        registry.get("churn/2")
    with pytest.raises(AliasNotFound, match="it has no aliases yet"):
        registry.get("churn@production")
    assert registry.get("churn").version == 1
    assert _stored_files(registry) == [registry.artifact_path(registry.get("churn/1"))]

    third = registry.register("churn", clf_v2)
    assert third.version == 3  # numbers are never reused: churn/2 can only ever mean the deleted model


def test_a_shared_artifact_stays_until_its_last_version_goes(registry: Registry, clf_v1: Path) -> None:
    first = registry.register("churn", clf_v1)
    second = registry.register("fraud", clf_v1)
    assert first.sha256 == second.sha256
    assert len(_stored_files(registry)) == 1

    registry.delete_version("churn", 1)
    assert load_model(registry, "fraud/1").info.sha256 == first.sha256
    registry.delete_version("fraud", 1)
    assert _stored_files(registry) == []
    assert registry.list_models() == []
    with pytest.raises(ModelNotFound):
        registry.get("churn")


def test_deleting_what_does_not_exist_says_so(registry: Registry, clf_v1: Path) -> None:
    registry.register("churn", clf_v1)
    with pytest.raises(VersionNotFound):
        registry.delete_version("churn", 4)
    with pytest.raises(ModelNotFound):
        registry.delete_version("fraud", 1)


# -- lookup errors ------------------------------------------------------------------------


def test_unknown_model_lists_what_is_registered(registry: Registry, clf_v1: Path) -> None:
    with pytest.raises(ModelNotFound, match="which is empty"):
        registry.get("churn")
    registry.register("churn", clf_v1)
    with pytest.raises(ModelNotFound, match=r"no model named 'chrn'.*did you mean 'churn'.*registered models: churn"):
        registry.get("chrn")
    with pytest.raises(LookupError):
        load_model(registry, "fraud@production")


def test_unknown_version_lists_the_versions(registry: Registry, clf_v1: Path, clf_v2: Path) -> None:
    for path in (clf_v1, clf_v2, clf_v1):
        registry.register("churn", path)
    registry.delete_version("churn", 2)
    with pytest.raises(VersionNotFound, match=r"model 'churn' has no version 2; its versions: 1, 3"):
        registry.get("models:/churn/2")


def test_a_malformed_uri_is_refused(registry: Registry) -> None:
    with pytest.raises(InvalidModelURI, match="Accepted forms"):
        registry.get("models:/churn/3/extra")


def test_bad_names_and_missing_files_are_refused(registry: Registry, clf_v1: Path, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="a model name starts with a letter or digit"):
        registry.register("churn/prod", clf_v1)
    with pytest.raises(RegistryError, match="does not exist"):
        registry.register("churn", tmp_path / "missing.joblib")
    with pytest.raises(RegistryError, match="JSON-serializable"):
        registry.register("churn", clf_v1, metadata={"when": datetime.now(UTC)})
    assert registry.list_models() == []


def test_a_home_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "home").write_text("not a folder")
    with pytest.raises(RegistryError, match="is a file"):
        open_registry(tmp_path / "home")


# -- integrity ----------------------------------------------------------------------------


def test_tampered_artifact_is_refused_before_loading(registry: Registry, clf_v1: Path) -> None:
    info = registry.register("churn", clf_v1, aliases=["production"])
    stored = registry.artifact_path(info)
    tampered = stored.read_bytes()[:-1] + b"\x00"
    stored.write_bytes(tampered)

    with pytest.raises(ArtifactIntegrityError) as caught:
        load_model(registry, "churn@production")
    message = str(caught.value)
    assert "churn/1" in message
    assert info.sha256 in message
    assert hashlib.sha256(tampered).hexdigest() in message
    assert registry.artifact_path(info, verify=False) == stored  # a deliberate, unchecked look is still possible


def test_a_deleted_artifact_is_reported_as_missing(registry: Registry, clf_v1: Path) -> None:
    info = registry.register("churn", clf_v1)
    registry.artifact_path(info).unlink()
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        load_model(registry, "churn")


def test_registering_the_same_file_again_repairs_a_tampered_copy(registry: Registry, clf_v1: Path) -> None:
    info = registry.register("churn", clf_v1)
    registry.artifact_path(info, verify=False).write_bytes(b"junk")
    registry.register("churn", clf_v1)
    assert load_model(registry, "churn/1").info.sha256 == info.sha256


# -- signatures ---------------------------------------------------------------------------


def _sample_frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(rng.normal(size=(20, 3)), columns=["tenure", "spend", "visits"])


def test_signature_inputs_from_a_dataframe_sample(registry: Registry, clf_v1: Path) -> None:
    info = registry.register("churn", clf_v1, sample=_sample_frame())
    assert info.signature.input_names == ["tenure", "spend", "visits"]
    assert {f.dtype for f in info.signature.inputs} == {"float64"}
    assert info.signature.output_names == ["score", "label", "proba"]
    prediction = load_model(registry, "churn").predict({"tenure": 1.0, "spend": 0.5, "visits": -1.0})
    assert set(prediction) == {"score", "label", "proba"}


@pytest.mark.parametrize("form", ["arrow", "csv", "parquet", "str-path"])
def test_signature_inputs_from_arrow_and_files(registry: Registry, clf_v1: Path, tmp_path: Path, form: str) -> None:
    frame = _sample_frame()
    frame["visits"] = frame["visits"].round().astype("int64")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    csv_path, parquet_path = tmp_path / "sample.csv", tmp_path / "sample.parquet"
    frame.to_csv(csv_path, index=False)
    pq.write_table(table, parquet_path)
    sample = {"arrow": table, "csv": csv_path, "parquet": parquet_path, "str-path": str(parquet_path)}[form]
    info = registry.register("churn", clf_v1, sample=sample)
    assert [(f.name, f.dtype) for f in info.signature.inputs] == [
        ("tenure", "float64"),
        ("spend", "float64"),
        ("visits", "float64"),
    ]


def test_string_sample_columns_become_string_features(registry: Registry, tmp_path: Path) -> None:
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame({"plan": ["a", "b", "c", "a"] * 10, "spend": np.arange(40.0)})
    target = (frame["spend"] > 20).astype(int)
    pipeline = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["plan"]), remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame, target)
    joblib.dump(pipeline, tmp_path / "pipe.joblib")

    info = registry.register("plans", tmp_path / "pipe.joblib", sample=frame)
    assert [(f.name, f.dtype) for f in info.signature.inputs] == [("plan", "string"), ("spend", "float64")]
    assert load_model(registry, "plans").predict({"plan": "b", "spend": 30.0})["label"] == 1


def test_a_sample_that_does_not_fit_the_model_is_refused(registry: Registry, clf_v1: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidSignature, match=r"the sample has 2 columns \['a', 'b'\] but the model takes 3 inputs"):
        registry.register("churn", clf_v1, sample=pd.DataFrame({"a": [1.0], "b": [2.0]}))
    with pytest.raises(InvalidSignature, match="sample= takes a pandas DataFrame"):
        registry.register("churn", clf_v1, sample=[[1.0, 2.0, 3.0]])
    (tmp_path / "sample.txt").write_text("a,b,c\n")
    with pytest.raises(InvalidSignature, match=r"expected a \.parquet, \.pq, \.csv, \.json, \.jsonl, \.ndjson file"):
        registry.register("churn", clf_v1, sample=tmp_path / "sample.txt")
    assert registry.list_models() == []


def test_sample_names_must_match_a_model_fitted_on_named_columns(registry: Registry, tmp_path: Path) -> None:
    frame = _sample_frame()
    joblib.dump(LinearRegression().fit(frame, frame["spend"] * 2), tmp_path / "reg.joblib")
    reordered = frame[["visits", "tenure", "spend"]]
    info = registry.register("spend", tmp_path / "reg.joblib", sample=reordered)
    assert info.signature.input_names == ["tenure", "spend", "visits"]  # the model's order, not the sample's
    with pytest.raises(InvalidSignature, match="not the features the model was fitted on"):
        registry.register("spend", tmp_path / "reg.joblib", sample=frame.rename(columns={"spend": "cost"}))


def test_an_explicit_signature_wins(registry: Registry, clf_v1: Path) -> None:
    signature = Signature(
        (Feature("a"), Feature("b"), Feature("c", allow_missing=True)),
        (Output("score", "score"),),
    )
    info = registry.register("churn", clf_v1, signature=signature, sample=_sample_frame())
    assert info.signature == signature
    as_dict = registry.register("churn", clf_v1, signature=signature.to_dict())  # type: ignore[arg-type]
    assert as_dict.signature == signature


# -- folder artifacts and the python flavor -----------------------------------------------

MODEL_PY = """
import numpy as np

class Doubler:
    signature = {"inputs": [{"name": "x"}], "outputs": [{"name": "y", "kind": "score"}]}

    @classmethod
    def load(cls, path):
        return cls()

    def predict(self, columns):
        return np.asarray(columns["x"]) * 2
"""


def test_a_folder_registers_and_loads(registry: Registry, tmp_path: Path) -> None:
    folder = tmp_path / "doubler"
    (folder / "assets").mkdir(parents=True)
    (folder / "model.py").write_text(MODEL_PY)
    (folder / "assets" / "notes.json").write_text(json.dumps({"why": "a second file, in a subfolder"}))

    info = registry.register("doubler", folder, flavor="python", flavor_options={"class": "model.py:Doubler"})
    assert info.flavor == "python"
    assert dict(info.flavor_options) == {"class": "model.py:Doubler"}
    assert info.size_bytes == sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert registry.artifact_path(info).name == "doubler"
    assert load_model(registry, "doubler").predict({"x": 2.5}) == {"y": 5.0}

    (registry.artifact_path(info) / "model.py").write_text(MODEL_PY.replace("* 2", "* 3"))
    with pytest.raises(ArtifactIntegrityError):
        load_model(registry, "doubler")


def test_no_signature_anywhere_says_what_to_pass(registry: Registry, tmp_path: Path) -> None:
    folder = tmp_path / "bare"
    folder.mkdir()
    (folder / "model.py").write_text(MODEL_PY.replace("    signature = ", "    declared = "))
    with pytest.raises(InvalidSignature, match="pass signature="):
        registry.register("bare", folder, flavor="python", flavor_options={"class": "model.py:Doubler"})


# -- threads ------------------------------------------------------------------------------


def test_threads_sharing_one_registry_get_distinct_versions(registry: Registry, clf_v1: Path) -> None:
    versions: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                versions.append(registry.register("churn", clf_v1).version)
                registry.get("churn")
        except BaseException as exc:  # surfaced below: a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(versions) == list(range(1, 21))


# -- the SQLite backend's own promises ----------------------------------------------------


def test_a_file_that_is_not_a_database_is_reported(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "registry.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(RegistryError, match=r"registry\.db"):
        open_registry(home)


def test_a_registry_from_a_newer_foretell_is_refused(tmp_path: Path) -> None:
    open_registry(tmp_path / "home")
    conn = sqlite3.connect(tmp_path / "home" / "registry.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(RegistryError, match="schema version 99, written by a newer foretell"):
        open_registry(tmp_path / "home")
