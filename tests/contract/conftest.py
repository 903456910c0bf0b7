"""Real model files, trained here on tiny data: one per flavor and task.

Each `Artifact` carries the library's own predictions for the same float64 matrix, so
a test can hold foretell's answer against the framework's. Files are built once per
session; every test that takes `artifact` runs once per case.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from foretell.adapters import get_flavor
from foretell.core import Model, ModelInfo, Predictor

N_FEATURES = 4


@dataclass(frozen=True)
class Data:
    x: np.ndarray
    binary: np.ndarray
    multiclass: np.ndarray
    regression: np.ndarray


def make_data(n: int = 40, seed: int = 7) -> Data:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES))
    signal = x[:, 0] + 0.5 * x[:, 1] - 0.25 * x[:, 2]
    return Data(
        x=x,
        binary=(signal > 0).astype(np.int64),
        multiclass=np.digitize(signal, [-0.5, 0.5]).astype(np.int64),
        regression=3.0 * signal + 0.1 * x[:, 3],
    )


DATA = make_data()


@dataclass(frozen=True)
class Artifact:
    """A saved model, what foretell should make of it, and what its own library predicts."""

    case: str
    flavor: str
    path: Path
    task: str  # "binary", "multiclass" or "regression"
    expected: Callable[[np.ndarray], dict[str, np.ndarray]]
    classes: tuple[Any, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    conformance_tol: float = 1e-9  # see foretell.testing.conformance on float32 graphs
    library_tol: float = 1e-12  # foretell against the library's own answer

    def model(self) -> Model:
        return load_model(self.flavor, self.path, self.options, name=self.case)


def load_model(flavor_name: str, path: Path, options: dict[str, Any], name: str = "model") -> Model:
    """What the registry does at registration and load time, minus the registry."""
    flavor = get_flavor(flavor_name)
    signature = flavor.describe(path, options)
    assert signature is not None, f"{flavor_name} flavor could not describe {path.name}"
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    content = b"".join(f.read_bytes() for f in files if f.is_file())
    info = ModelInfo(
        name=name,
        version=1,
        flavor=flavor.name,
        signature=signature,
        sha256=hashlib.sha256(content).hexdigest(),
        size_bytes=len(content),
        created_at="2025-01-01T00:00:00+00:00",
        framework_versions=flavor.framework_versions(),
        flavor_options=options,
    )
    return Model(info, Predictor(flavor.load(path, signature, options), signature, name))


def classifier_expected(estimator: Any) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    def expected(x: np.ndarray) -> dict[str, np.ndarray]:
        proba = estimator.predict_proba(x)
        out = {"label": np.asarray(estimator.predict(x)), "proba": proba}
        if proba.shape[1] == 2:
            out["score"] = proba[:, 1]
        return out

    return expected


def regressor_expected(estimator: Any) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    return lambda x: {"score": np.asarray(estimator.predict(x)).reshape(-1)}


# -- builders, one per case ------------------------------------------------------------------------


def _sklearn(folder: Path, task: str) -> Artifact:
    import joblib
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if task == "regression":
        estimator = make_pipeline(StandardScaler(), LinearRegression()).fit(DATA.x, DATA.regression)
        expected = regressor_expected(estimator)
    else:
        estimator = make_pipeline(StandardScaler(), LogisticRegression()).fit(DATA.x, getattr(DATA, task))
        expected = classifier_expected(estimator)
    path = folder / "model.joblib"
    joblib.dump(estimator, path)
    classes = tuple(getattr(estimator, "classes_", ()))
    return Artifact(f"sklearn-{task}", "sklearn", path, task, expected, classes)


def _skops(folder: Path, task: str) -> Artifact:
    """Trees, whose `Tree` type skops does not trust by default: registered with it trusted."""
    import skops.io as sio
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor

    if task == "regression":
        estimator: Any = GradientBoostingRegressor(n_estimators=20, random_state=0).fit(DATA.x, DATA.regression)
        expected = regressor_expected(estimator)
    else:
        estimator = GradientBoostingClassifier(n_estimators=20, random_state=0).fit(DATA.x, getattr(DATA, task))
        expected = classifier_expected(estimator)
    path = folder / "model.skops"
    sio.dump(estimator, path)
    classes = tuple(getattr(estimator, "classes_", ()))
    options = {"trusted": ["sklearn.tree._tree.Tree"]}
    return Artifact(f"skops-{task}", "skops", path, task, expected, classes, options=options)


def _onnx(folder: Path, task: str) -> Artifact:
    import onnxruntime as ort
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    types = [("input", FloatTensorType([None, N_FEATURES]))]
    if task == "regression":
        estimator = make_pipeline(StandardScaler(), LinearRegression()).fit(DATA.x, DATA.regression)
        graph = convert_sklearn(estimator, initial_types=types)
    elif task == "binary":
        # Plain tensors out: integer labels and a probability matrix.
        estimator = make_pipeline(StandardScaler(), LogisticRegression()).fit(DATA.x, DATA.binary)
        graph = convert_sklearn(estimator, initial_types=types, options={id(estimator): {"zipmap": False}})
    else:
        # String labels and skl2onnx's default ZipMap output: one {class: probability} map per row.
        labels = np.array(["low", "mid", "high"], dtype=object)[DATA.multiclass]
        estimator = make_pipeline(StandardScaler(), LogisticRegression()).fit(DATA.x, labels)
        graph = convert_sklearn(estimator, initial_types=types)
    path = folder / "model.onnx"
    path.write_bytes(graph.SerializeToString())
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    classes = tuple(getattr(estimator, "classes_", ()))

    def expected(x: np.ndarray) -> dict[str, np.ndarray]:
        outputs = session.run(None, {"input": x.astype(np.float32)})
        if task == "regression":
            return {"score": outputs[0].reshape(-1)}
        label, proba = outputs
        if isinstance(proba, list):
            proba = np.array([[row[c] for c in classes] for row in proba])
        out = {"label": label, "proba": proba}
        if proba.shape[1] == 2:
            out["score"] = proba[:, 1]
        return out

    return Artifact(f"onnx-{task}", "onnx", path, task, expected, classes, conformance_tol=1e-6)


def _lightgbm(folder: Path, task: str) -> Artifact:
    import lightgbm

    params: dict[str, Any] = {"n_estimators": 8, "num_leaves": 4, "min_child_samples": 3, "n_jobs": 1, "verbose": -1}
    if task == "regression":
        estimator = lightgbm.LGBMRegressor(**params).fit(DATA.x, DATA.regression)
        expected = regressor_expected(estimator)
    else:
        estimator = lightgbm.LGBMClassifier(**params).fit(DATA.x, getattr(DATA, task))
        expected = classifier_expected(estimator)
    path = folder / "model.txt"
    estimator.booster_.save_model(path)
    classes = tuple(getattr(estimator, "classes_", ()))
    return Artifact(f"lightgbm-{task}", "lightgbm", path, task, expected, classes)


def _xgboost(folder: Path, task: str) -> Artifact:
    import xgboost

    params = {"n_estimators": 8, "max_depth": 2, "n_jobs": 1}
    if task == "regression":
        estimator = xgboost.XGBRegressor(**params).fit(DATA.x, DATA.regression)
        expected = regressor_expected(estimator)
        path = folder / "model.ubj"  # one case in UBJSON, the others in JSON
    else:
        estimator = xgboost.XGBClassifier(**params).fit(DATA.x, getattr(DATA, task))
        expected = classifier_expected(estimator)
        path = folder / "model.json"
    estimator.save_model(path)
    classes = tuple(getattr(estimator, "classes_", ()))
    # XGBClassifier.predict_proba works out P(class 0) = 1 - p in float32; foretell does it
    # in float64 from the same float32 p, so that column differs by float32 rounding (≤ 6e-8).
    return Artifact(f"xgboost-{task}", "xgboost", path, task, expected, classes, library_tol=1e-7)


PYTHON_MODEL = '''
import numpy as np

WEIGHTS = np.array([1.0, 2.0, -1.0, 0.5])


class Weighted:
    """A linear score written by hand: the kind of model the python flavor exists for."""

    signature = {
        "inputs": [{"name": name, "dtype": "float64"} for name in ("a", "b", "c", "d")],
        "outputs": [{"name": "score", "kind": "score", "dtype": "float64"}],
    }

    @classmethod
    def load(cls, path):
        return cls()

    def predict(self, columns):
        return {"score": np.column_stack([columns[n] for n in ("a", "b", "c", "d")]) @ WEIGHTS}
'''


def _python(folder: Path, task: str) -> Artifact:
    (folder / "weighted.py").write_text(PYTHON_MODEL)

    def expected(x: np.ndarray) -> dict[str, np.ndarray]:
        return {"score": x @ np.array([1.0, 2.0, -1.0, 0.5])}

    options = {"class": "weighted.py:Weighted"}
    return Artifact("python-regression", "python", folder, task, expected, options=options)


BUILDERS: dict[str, Callable[[Path], Artifact]] = {
    "sklearn-binary": lambda folder: _sklearn(folder, "binary"),
    "sklearn-regression": lambda folder: _sklearn(folder, "regression"),
    "skops-binary": lambda folder: _skops(folder, "binary"),
    "skops-multiclass": lambda folder: _skops(folder, "multiclass"),
    "skops-regression": lambda folder: _skops(folder, "regression"),
    "onnx-binary": lambda folder: _onnx(folder, "binary"),
    "onnx-multiclass": lambda folder: _onnx(folder, "multiclass"),
    "onnx-regression": lambda folder: _onnx(folder, "regression"),
    "lightgbm-binary": lambda folder: _lightgbm(folder, "binary"),
    "lightgbm-multiclass": lambda folder: _lightgbm(folder, "multiclass"),
    "lightgbm-regression": lambda folder: _lightgbm(folder, "regression"),
    "xgboost-binary": lambda folder: _xgboost(folder, "binary"),
    "xgboost-multiclass": lambda folder: _xgboost(folder, "multiclass"),
    "xgboost-regression": lambda folder: _xgboost(folder, "regression"),
    "python-regression": lambda folder: _python(folder, "regression"),
}


@pytest.fixture(scope="session")
def data() -> Data:
    return DATA


@pytest.fixture(scope="session")
def as_model() -> Callable[..., Model]:
    """`as_model(flavor_name, path, options)`: describe, load and wrap, as the registry would."""
    return load_model


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Artifact]:
    """Build a case by name, once per session: for tests that need one particular model."""
    cache: dict[str, Artifact] = {}

    def get(case: str) -> Artifact:
        if case not in cache:
            cache[case] = BUILDERS[case](tmp_path_factory.mktemp(case))
        return cache[case]

    return get


@pytest.fixture(scope="session", params=sorted(BUILDERS))
def artifact(request: pytest.FixtureRequest, build: Callable[[str], Artifact]) -> Artifact:
    """Every case in turn."""
    return build(request.param)
