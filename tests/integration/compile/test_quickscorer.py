"""The bit-vector evaluator against the frameworks themselves, on inputs chosen to break it.

Each model is trained here, laid out as tables, compiled by the machine's gcc and called
through the same entry point foretell's predictor calls. Hypothesis draws the rows: every
split threshold and the float step either side of it, infinities, NaN, category codes
in and out of the model's range. The framework's own predict is the reference.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

pytest.importorskip("treelite")

from foretell.compile.compilers.base import c_compiler
from foretell.compile.compilers.quickscorer import quickscorer_tables
from foretell.compile.compilers.trees import (
    LIBRARY,
    build_trees,
    declare_entry,
    strided,
    tree_source,
    tree_source_sklearn,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.skipif(c_compiler() is None, reason="needs a C compiler"),
]

N_FEATURES = 4
CATEGORY = 3  # the column holding category codes 0..4
#: Codes the models know, missing, and codes they never saw (past the last, negative, past float's integers).
CODES = [0.0, 1.0, 2.0, 3.0, 4.0, np.nan, 5.0, 9.0, -1.0, 2.0**24 + 2]


def training_data(classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2_000, N_FEATURES))
    x[:, CATEGORY] = rng.integers(0, 5, size=2_000)
    x[rng.random(2_000) < 0.1, 1] = np.nan
    signal = x[:, 0] + np.nan_to_num(x[:, 1]) * 0.7 + (x[:, CATEGORY] == 3)
    cuts = [0.2] if classes == 2 else [-0.3, 0.7]
    return x, np.digitize(signal, cuts).astype(np.int64)


class Compiled:
    def __init__(self, library: Path, outputs: int) -> None:
        self._library = ctypes.CDLL(str(library))
        self._entry = declare_entry(self._library.foretell_predict)
        self.outputs = outputs

    def __call__(self, rows: np.ndarray, single: bool) -> np.ndarray:
        rows, row_stride, col_stride = strided(rows)
        out = np.empty((len(rows), self.outputs))
        status = self._entry(
            rows.ctypes.data, len(rows), rows.shape[1], row_stride, col_stride, 0, int(single), out.ctypes.data
        )
        assert status == 0
        return out


def hgb(x: np.ndarray, y: np.ndarray, folder: Path) -> tuple[Any, Any, str]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=25, categorical_features=[CATEGORY], random_state=0).fit(x, y)
    return model, *tree_source_sklearn(model)  # type: ignore[misc]


def gradient_boosting(x: np.ndarray, y: np.ndarray, folder: Path) -> tuple[Any, Any, str]:
    from sklearn.ensemble import GradientBoostingRegressor

    model = GradientBoostingRegressor(n_estimators=20, max_depth=4, random_state=0).fit(np.nan_to_num(x), y)
    return model, *tree_source_sklearn(model)  # type: ignore[misc]


def random_forest(x: np.ndarray, y: np.ndarray, folder: Path) -> tuple[Any, Any, str]:
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0).fit(np.nan_to_num(x), y)
    return model, *tree_source_sklearn(model)  # type: ignore[misc]


def xgboost_softmax(x: np.ndarray, y: np.ndarray, folder: Path) -> tuple[Any, Any, str]:
    return xgboost_model(x, y, folder, {"objective": "multi:softprob", "num_class": 3})


def xgboost_model(
    x: np.ndarray, y: np.ndarray, folder: Path, objective: dict[str, Any] | None = None
) -> tuple[Any, Any, str]:
    xgboost = pytest.importorskip("xgboost")
    params = {"objective": "binary:logistic", "max_depth": 4, "nthread": 1, **(objective or {})}
    booster = xgboost.train(params, xgboost.DMatrix(x, label=y), num_boost_round=15)
    path = folder / "model.json"
    booster.save_model(str(path))
    return booster, *tree_source("xgboost", path)  # type: ignore[misc]


def lightgbm_model(x: np.ndarray, y: np.ndarray, folder: Path) -> tuple[Any, Any, str]:
    lightgbm = pytest.importorskip("lightgbm")
    data = lightgbm.Dataset(x, label=y, categorical_feature=[CATEGORY])
    params = {"objective": "binary", "num_leaves": 15, "verbose": -1, "num_threads": 1, "min_data_per_group": 5}
    booster = lightgbm.train(params, data, num_boost_round=15)
    path = folder / "model.txt"
    booster.save_model(str(path))
    return booster, *tree_source("lightgbm", path)  # type: ignore[misc]


def reference(framework: Any, rows: np.ndarray) -> np.ndarray:
    if hasattr(framework, "predict_proba"):
        proba = np.asarray(framework.predict_proba(rows))
        return proba[:, 1:] if proba.shape[1] == 2 else proba  # binary models give P(class 1) alone
    if hasattr(framework, "inplace_predict"):  # xgboost
        return np.asarray(framework.inplace_predict(rows)).reshape(len(rows), -1)
    if hasattr(framework, "predict") and type(framework).__module__.startswith("lightgbm"):
        return np.asarray(framework.predict(rows, num_threads=1)).reshape(len(rows), -1)
    return np.asarray(framework.predict(rows)).reshape(len(rows), -1)


#: name: (how to train it, how many classes its target has)
FAMILIES: dict[str, tuple[Callable[[np.ndarray, np.ndarray, Path], tuple[Any, Any, str]], int]] = {
    "sklearn-hgb": (hgb, 2),
    "sklearn-gradient-boosting": (gradient_boosting, 2),
    "sklearn-random-forest-3-class": (random_forest, 3),  # leaf vectors, averaged
    "xgboost": (xgboost_model, 2),
    "xgboost-3-class": (xgboost_softmax, 3),  # a tree per class, softmax
    "lightgbm": (lightgbm_model, 2),
}
#: Families whose framework compares float32-rounded inputs (and takes no missing values).
FLOAT32_DENSE = {"sklearn-gradient-boosting", "sklearn-random-forest-3-class"}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    train, classes = FAMILIES[request.param]
    x, y = training_data(classes)
    folder = tmp_path_factory.mktemp(request.param)
    framework, model, inputs = train(x, y, folder)
    built = build_trees(model, folder, [f"f{i}" for i in range(N_FEATURES)], inputs)
    assert built.settings["evaluator"] == "quickscorer"
    tables = quickscorer_tables(model)
    edges = sorted({v for values in built.edges.values() for v in values})
    return request.param, framework, Compiled(folder / LIBRARY, tables.n_outputs), inputs, edges


def values(edges: list[float]) -> st.SearchStrategy[float]:
    near_edges = st.sampled_from(edges).flatmap(
        lambda edge: st.sampled_from([edge, np.nextafter(edge, -np.inf), np.nextafter(edge, np.inf)])
    )
    return st.one_of(
        near_edges,
        st.floats(allow_nan=True, allow_infinity=True, width=64),
        st.floats(-5, 5),
    )


# The rows hold +inf and -inf on purpose; scikit-learn's finiteness check sums them to NaN on the way.
@pytest.mark.filterwarnings("ignore:invalid value encountered in reduce:RuntimeWarning")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_bit_vector_tables_answer_as_the_framework_does(family: Any, data: st.DataObject) -> None:
    name, framework, compiled, inputs, edges = family
    n = data.draw(st.integers(1, 40), label="rows")  # blocks of 8 rows, and what is left over
    rows = data.draw(arrays(np.float64, (n, N_FEATURES), elements=values(edges)), label="rows")
    codes = data.draw(arrays(np.float64, n, elements=st.sampled_from(CODES)), label="codes")
    rows[:, CATEGORY] = codes
    if name in FLOAT32_DENSE:
        # It takes no missing values, nor values beyond float32's range (it compares float32s).
        rows = np.clip(np.nan_to_num(rows, nan=0.0), -3e38, 3e38)
    want = reference(framework, rows)
    if data.draw(st.booleans(), label="column-major"):
        rows = np.asfortranarray(rows)
    got = compiled(rows, single=name in FLOAT32_DENSE)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 if inputs == "float32" else 1e-12)
