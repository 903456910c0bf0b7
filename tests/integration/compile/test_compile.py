"""Compiled predictors through the registry, as a user gets them: built, proven, used, refused.

Every model here is trained in the test on small data, registered in a fresh registry,
compiled with the real toolchain (treelite + tl2cgen + the machine's gcc, or skl2onnx +
ONNX Runtime), and loaded back. Nothing is mocked: a "corrupted" library is a real file
whose bytes were changed, a "foreign" one a real record that names another machine.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import foretell
from foretell.core import Feature, Signature
from foretell.errors import InvalidInput, UnsupportedModel
from foretell.registry import SqliteRegistry, compile_model, load_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

N_ROWS = 3_000


def data(seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features with missing values and a category code column, plus binary, 3-class and real targets."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_ROWS, 5))
    x[:, 4] = rng.integers(0, 4, size=N_ROWS)  # a category code
    signal = x[:, 0] + 0.5 * x[:, 1] - 0.3 * x[:, 2] + 0.4 * (x[:, 4] == 2)
    x[rng.random(N_ROWS) < 0.05, 1] = np.nan
    return x, (signal > 0).astype(np.int64), np.digitize(signal, [-0.5, 0.5]), 3 * signal + x[:, 3]


X, BINARY, MULTI, REAL = data()
DENSE = np.nan_to_num(X)  # for estimators that take no missing values


def features(allow_missing: bool, categorical: bool = False) -> tuple[Feature, ...]:
    numeric = tuple(Feature(f"f{i}", "float64", allow_missing=allow_missing) for i in range(4))
    last = (
        Feature("f4", "category", allow_missing=allow_missing, categories=("a", "b", "c", "d"))
        if categorical
        else Feature("f4", "float64", allow_missing=allow_missing)
    )
    return (*numeric, last)


def signature_of(model: Any, allow_missing: bool, categorical: bool = False) -> Signature:
    from foretell.adapters.outputs import classifier_outputs, regressor_outputs

    classes = getattr(model, "classes_", None)
    outputs = classifier_outputs(list(classes)) if classes is not None else regressor_outputs()
    return Signature(features(allow_missing, categorical), outputs)


def sklearn_case(build: Callable[[], Any], target: np.ndarray, *, dense: bool, categorical: bool = False):
    def make(folder: Path) -> tuple[Path, str, Signature]:
        import joblib

        model = build().fit(DENSE if dense else X, target)
        path = folder / "model.joblib"
        joblib.dump(model, path)
        return path, "sklearn", signature_of(model, allow_missing=not dense, categorical=categorical)

    return make


def hgb_classifier() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=30, categorical_features=[4], random_state=0)


def hgb_regressor() -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(max_iter=30, random_state=0)


def gradient_boosting() -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0)


def random_forest() -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0)


def deep_random_forest() -> Any:
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=5, random_state=0)  # grown to purity: hundreds of leaves a tree


def extra_trees() -> Any:
    from sklearn.ensemble import ExtraTreesRegressor

    return ExtraTreesRegressor(n_estimators=15, max_depth=6, random_state=0)


def logistic_pipeline() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression())


def ridge_pipeline() -> Any:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), Ridge())


def lightgbm_case(folder: Path) -> tuple[Path, str, Signature]:
    lightgbm = pytest.importorskip("lightgbm")
    booster = lightgbm.train(
        {"objective": "binary", "num_leaves": 15, "verbose": -1, "num_threads": 1},
        lightgbm.Dataset(X, BINARY),
        num_boost_round=30,
    )
    path = folder / "model.txt"
    booster.save_model(str(path))
    return path, "lightgbm", None  # type: ignore[return-value]


def xgboost_case(objective: str, target: np.ndarray) -> Callable[[Path], tuple[Path, str, Any]]:
    def make(folder: Path) -> tuple[Path, str, Any]:
        xgboost = pytest.importorskip("xgboost")
        params: dict[str, Any] = {"objective": objective, "max_depth": 4, "nthread": 1}
        if objective.startswith("multi"):
            params["num_class"] = 3
        booster = xgboost.train(params, xgboost.DMatrix(X, label=target), num_boost_round=25)
        path = folder / "model.json"
        booster.save_model(str(path))
        return path, "xgboost", None

    return make


#: case: (how to make it, the compiler that takes it, the tree evaluator that writes its C)
CASES: dict[str, tuple[Callable[[Path], tuple[Path, str, Any]], str, str | None]] = {
    "sklearn-hgb-classifier": (
        sklearn_case(hgb_classifier, BINARY, dense=False, categorical=True),
        "treelite",
        "quickscorer",
    ),
    "sklearn-hgb-regressor": (sklearn_case(hgb_regressor, REAL, dense=False), "treelite", "quickscorer"),
    "sklearn-gradient-boosting": (sklearn_case(gradient_boosting, BINARY, dense=True), "treelite", "quickscorer"),
    "sklearn-random-forest-3-class": (sklearn_case(random_forest, MULTI, dense=True), "treelite", "quickscorer"),
    "sklearn-random-forest-deep": (sklearn_case(deep_random_forest, REAL, dense=True), "treelite", "tl2cgen"),
    "sklearn-extra-trees-regressor": (sklearn_case(extra_trees, REAL, dense=True), "treelite", "quickscorer"),
    "lightgbm-binary": (lightgbm_case, "treelite", "quickscorer"),
    "xgboost-binary": (xgboost_case("binary:logistic", BINARY), "treelite", "quickscorer"),
    "xgboost-3-class": (xgboost_case("multi:softprob", MULTI), "treelite", "quickscorer"),
    "sklearn-logistic-pipeline": (sklearn_case(logistic_pipeline, BINARY, dense=True), "onnx", None),
    "sklearn-ridge-pipeline": (sklearn_case(ridge_pipeline, REAL, dense=True), "onnx", None),
}


def register(registry: SqliteRegistry, folder: Path, case: str) -> foretell.ModelInfo:
    make, _, _ = CASES[case]
    path, flavor, signature = make(folder)
    return registry.register(case.replace("-3-class", "").replace("-", "_"), path, flavor=flavor, signature=signature)


@pytest.fixture
def registry(tmp_path: Path) -> SqliteRegistry:
    return SqliteRegistry(tmp_path / "home")


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_supported_family_compiles_and_passes_its_parity_proof(
    registry: SqliteRegistry, tmp_path: Path, case: str
) -> None:
    info = register(registry, tmp_path, case)
    report = compile_model(registry, info.uri)
    assert report.status == "passed", report.reason
    assert report.compiler == CASES[case][1]
    assert report.settings.get("evaluator") == CASES[case][2]
    assert report.parity["rows"] >= 10_000
    assert max(report.parity["max_abs_diff"].values()) <= 1e-6
    assert all(count == 0 for count in report.parity["mismatched_rows"].values())
    assert report.speed["speedup"]["single_row"] > 1  # measured, not assumed

    compiled = load_model(registry, info.uri)
    original = load_model(registry, info.uri, predictor="original")
    assert compiled.variant == CASES[case][1]
    assert original.variant == "original"
    rows = X if all(f.allow_missing for f in info.signature.inputs) else DENSE
    want, got = original.predict_batch(rows[:500]), compiled.predict_batch(rows[:500])
    for name in info.signature.output_names:
        if name == "label":
            assert got.column(name).tolist() == want.column(name).tolist()
        else:
            np.testing.assert_allclose(
                np.asarray(got.column(name), dtype=float),
                np.asarray(want.column(name), dtype=float),
                rtol=0,
                atol=1e-6,
                err_msg=name,
            )
    shown = registry.get(info.uri).compiled
    assert shown is not None and shown["status"] == "passed"


def test_a_zero_tolerance_keeps_the_original_predictor(registry: SqliteRegistry, tmp_path: Path) -> None:
    info = register(registry, tmp_path, "sklearn-hgb-classifier")
    report = compile_model(registry, info.uri, tolerance=0.0)
    # The compiled trees sum their leaves in another order: equal to ~1e-16, not to the bit.
    assert report.status == "failed"
    assert "parity proof failed" in report.reason and "> tolerance 0" in report.reason
    assert load_model(registry, info.uri).variant == "original"
    with pytest.raises(UnsupportedModel, match="parity proof failed"):
        load_model(registry, info.uri, predictor="compiled")
    assert registry.get(info.uri).compiled["status"] == "failed"  # type: ignore[index]


def test_a_model_that_cannot_be_compiled_keeps_its_original_with_a_reason(
    registry: SqliteRegistry, tmp_path: Path
) -> None:
    from foretell.demo.movies import MovieRecommender

    ratings = __import__("pyarrow").table(
        {"user_id": [1, 1, 2, 2, 3], "movie_id": [10, 11, 10, 12, 11], "rating": [5.0, 3.0, 4.0, 2.0, 5.0]}
    )
    folder = MovieRecommender.fit(ratings, n_factors=2, iters=2).save(tmp_path / "recs")
    info = registry.register(
        "recs",
        folder,
        flavor="python",
        signature=MovieRecommender.signature,
        flavor_options={"class": "foretell.demo.movies:MovieRecommender"},
    )
    report = compile_model(registry, info.uri)
    assert report.status == "unsupported"
    assert "user code" in report.reason
    assert load_model(registry, info.uri).variant == "original"

    strings = Signature(
        (Feature("plan", "string"), Feature("x", "float64")), signature_of(logistic_pipeline(), False).outputs[:1]
    )
    import joblib
    from sklearn.linear_model import LinearRegression

    joblib.dump(LinearRegression().fit(DENSE[:, :2], REAL), tmp_path / "lr.joblib")
    info = registry.register("lr", tmp_path / "lr.joblib", signature=strings)
    report = compile_model(registry, info.uri)
    assert report.status == "unsupported"
    assert "feature 'plan' is a string" in report.reason


def library_of(registry: SqliteRegistry, info: foretell.ModelInfo) -> Path:
    with sqlite3.connect(registry.db_path) as conn:
        folder, main_file = conn.execute(
            "SELECT folder, main_file FROM compiled WHERE name = ? AND version = ?", (info.name, info.version)
        ).fetchone()
    return registry.home / "compiled" / folder / main_file


def built_elsewhere(registry: SqliteRegistry, **differences: str) -> None:
    """Record the (only) build as made on another machine: what a registry copied from one looks like."""
    with sqlite3.connect(registry.db_path) as conn:
        target = json.loads(conn.execute("SELECT target FROM compiled").fetchone()[0])
        conn.execute("UPDATE compiled SET target = ?", (json.dumps({**target, **differences}),))


def test_a_corrupted_library_is_rebuilt_never_loaded(
    registry: SqliteRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    info = register(registry, tmp_path, "sklearn-gradient-boosting")
    assert compile_model(registry, info.uri).used
    library = library_of(registry, info)
    damaged = bytearray(library.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    # A new file in its place: this process still has the proven library mapped (the proof loaded it),
    # and rewriting those pages in place would corrupt the running copy, not just the file.
    library.unlink()
    library.write_bytes(bytes(damaged))

    with caplog.at_level(logging.WARNING, logger="foretell.compile"):
        model = load_model(registry, info.uri)
    assert "no longer has the sha256 recorded" in caplog.text and "rebuilding" in caplog.text
    assert model.variant == "treelite"
    rebuilt = library_of(registry, info)
    assert rebuilt != library and rebuilt.is_file()
    # The damaged build's folder goes once it is an hour old (a process may still be about to load it).
    assert library.exists()
    os.utime(library.parent, (1.0, 1.0))
    compile_model(registry, info.uri)  # any later build sweeps
    assert not library.parent.exists()
    assert library_of(registry, info).is_file()
    want = load_model(registry, info.uri, predictor="original").predict_batch(DENSE[:200])
    got = model.predict_batch(DENSE[:200]).column("score")
    np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(want.column("score"), dtype=float), atol=1e-6)


def test_a_library_built_for_another_machine_is_rebuilt_here(
    registry: SqliteRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    info = register(registry, tmp_path, "sklearn-hgb-regressor")
    assert compile_model(registry, info.uri).used
    library = library_of(registry, info)
    built_elsewhere(registry, machine="aarch64", c_compiler="clang 17.0.6")

    with caplog.at_level(logging.WARNING, logger="foretell.compile"):
        model = load_model(registry, info.uri)
    assert "built for another machine or toolchain" in caplog.text
    assert "machine: 'aarch64' there" in caplog.text
    assert model.variant == "treelite"
    assert library_of(registry, info) != library
    # The rebuild was proven on the first proof's rows, and recorded for this machine.
    assert registry.get(info.uri).compiled["parity"]["rows"] == 16_384  # type: ignore[index]
    assert load_model(registry, info.uri).variant == "treelite"  # no second rebuild
    assert caplog.text.count("rebuilding") == 1


def test_a_damaged_validation_sample_is_replaced_on_rebuild(registry: SqliteRegistry, tmp_path: Path) -> None:
    info = register(registry, tmp_path, "sklearn-logistic-pipeline")
    assert compile_model(registry, info.uri).used
    library = library_of(registry, info)
    (library.parent / "validation.npy").write_bytes(b"not numpy")
    library.unlink()
    library.write_bytes(b"not an onnx graph")
    model = load_model(registry, info.uri)
    assert model.variant == "onnx"
    assert model.predict_batch(DENSE[:3]).column("label").tolist() == (
        load_model(registry, info.uri, predictor="original").predict_batch(DENSE[:3]).column("label").tolist()
    )


def test_a_sample_gives_real_rows_to_the_proof(registry: SqliteRegistry, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    info = register(registry, tmp_path, "sklearn-hgb-regressor")
    table = pa.table({f"f{i}": X[:, i] for i in range(5)} | {"id": np.arange(N_ROWS)})
    pq.write_table(table, tmp_path / "sample.parquet")
    report = compile_model(registry, info.uri, sample=tmp_path / "sample.parquet", rows=12_000)
    assert report.used and report.parity["rows"] == 12_000
    with pytest.raises(foretell.ForetellError, match="does not exist"):
        compile_model(registry, info.uri, sample=tmp_path / "missing.parquet")


def test_a_rebuild_that_fails_here_keeps_the_passing_build_for_the_others(
    registry: SqliteRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A host without a C compiler must not take the build away from the machines that have one."""
    info = register(registry, tmp_path, "sklearn-gradient-boosting")
    assert compile_model(registry, info.uri).used
    library = library_of(registry, info)
    built_elsewhere(registry, machine="aarch64")
    monkeypatch.setenv("PATH", str(tmp_path / "no-compilers-here"))
    from foretell.compile.compilers import base

    base.c_compiler.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="foretell.compile"):
            model = load_model(registry, info.uri)
    finally:
        base.c_compiler.cache_clear()
    assert model.variant == "original"  # answers all the same
    assert "no C compiler" in caplog.text
    recorded = registry.get(info.uri).compiled
    assert recorded is not None and recorded["status"] == "passed"
    assert library_of(registry, info) == library and library.is_file()


def test_predictor_choice_is_checked(registry: SqliteRegistry, tmp_path: Path) -> None:
    info = register(registry, tmp_path, "sklearn-ridge-pipeline")
    with pytest.raises(InvalidInput, match="predictor must be one of auto, original, compiled"):
        load_model(registry, info.uri, predictor="fast")  # type: ignore[arg-type]  # a wrong value on purpose
    with pytest.raises(UnsupportedModel, match="never compiled"):
        load_model(registry, info.uri, predictor="compiled")


def test_a_version_1_registry_gains_the_compiled_table(tmp_path: Path) -> None:
    home = tmp_path / "old"
    home.mkdir()
    from foretell.registry import sqlite as registry_sqlite

    with sqlite3.connect(home / "registry.db") as conn:
        for statement in registry_sqlite._SCHEMA[:4]:  # the version-1 tables, as the last release made them
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
    registry = SqliteRegistry(home)
    info = register(registry, tmp_path, "sklearn-ridge-pipeline")
    assert compile_model(registry, info.uri).used
    with sqlite3.connect(home / "registry.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == registry_sqlite.SCHEMA_VERSION


def test_deleting_a_version_forgets_its_compiled_record(registry: SqliteRegistry, tmp_path: Path) -> None:
    info = register(registry, tmp_path, "sklearn-ridge-pipeline")
    assert compile_model(registry, info.uri).used
    registry.delete_version(info.name, info.version)
    with sqlite3.connect(registry.db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM compiled").fetchone()[0] == 0


def test_ranges_seen_at_registration_shape_a_later_proof(registry: SqliteRegistry, tmp_path: Path) -> None:
    import joblib
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(8)
    big = rng.uniform(10_000, 90_000, size=(500, 2))
    joblib.dump(LinearRegression().fit(big, big[:, 0] * 0.5), tmp_path / "lr.joblib")
    pq.write_table(pa.table({"income": big[:, 0], "rent": big[:, 1]}), tmp_path / "sample.parquet")
    info = registry.register("lr", tmp_path / "lr.joblib", sample=tmp_path / "sample.parquet")
    recorded = info.metadata["observed_ranges"]
    assert recorded["income"][0] >= 10_000 and recorded["income"][1] <= 90_000
    assert compile_model(registry, info.uri).used  # no sample now: the recorded ranges stand in for it
    validation = np.load(library_of(registry, info).parent / "validation.npy")
    assert np.median(validation[:, 0]) > 5_000  # drawn across the real range, not around zero
