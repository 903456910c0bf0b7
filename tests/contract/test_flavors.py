"""Every flavor, run on real model files: detected, described, loaded, held to the conformance suite,
and answering what its own library answers."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from foretell.adapters import detect_flavor, get_flavor
from foretell.core import Feature, Frame, Model, ModelInfo, Output, PredictOptions, Predictor, Signature
from foretell.errors import InvalidInput, MissingExtra, ModelLoadError, UnsupportedModel
from foretell.testing import check_model

if TYPE_CHECKING:
    from conftest import Artifact, Data

Build = Callable[[str], "Artifact"]
AsModel = Callable[..., Model]

OUTPUTS = {"binary": ["score", "label", "proba"], "multiclass": ["label", "proba"], "regression": ["score"]}


def dict_rows(model: Model, x: np.ndarray) -> list[dict[str, float]]:
    """The real-time form: one dict per row, keyed by the signature's names."""
    return [dict(zip(model.signature.input_names, row, strict=True)) for row in x.tolist()]


def assert_matches(got: dict[str, np.ndarray], expected: dict[str, np.ndarray], atol: float) -> None:
    assert sorted(got) == sorted(expected)
    for name, want in expected.items():
        if name == "label":
            assert got[name].tolist() == np.asarray(want).tolist(), name
        else:
            np.testing.assert_allclose(got[name], want, rtol=0, atol=atol, err_msg=name)


# -- every case ------------------------------------------------------------------------------------


def test_detects_its_flavor(artifact: Artifact) -> None:
    if artifact.flavor == "python":
        with pytest.raises(UnsupportedModel, match="name it with flavor="):
            detect_flavor(artifact.path)  # a user class is always named, never guessed
    else:
        assert detect_flavor(artifact.path).name == artifact.flavor


def test_describe_reads_a_signature_from_the_file(artifact: Artifact) -> None:
    signature = get_flavor(artifact.flavor).describe(artifact.path, artifact.options)
    assert signature is not None
    assert len(signature.inputs) == 4
    assert all(f.dtype == "float64" for f in signature.inputs)
    trees = artifact.flavor in ("lightgbm", "xgboost")
    assert all(f.allow_missing == trees for f in signature.inputs)
    assert signature.output_names == OUTPUTS[artifact.task]
    if artifact.task != "regression":
        proba = signature.output("proba")
        assert proba.classes == artifact.classes
        assert proba.shape == (len(artifact.classes),)


def test_bad_input_is_invalid_input_before_the_framework_sees_it(artifact: Artifact, data: Data) -> None:
    model = artifact.model()
    good = dict_rows(model, data.x[:3])
    first = model.signature.input_names[0]
    with_nan = [good[0], {**good[1], first: float("nan")}, good[2]]
    if model.signature.inputs[0].allow_missing:
        assert len(model.predict_batch(with_nan)) == 3
    else:
        with pytest.raises(InvalidInput, match=rf"row 1, field '{first}': expected a float64 value, not a missing one"):
            model.predict_batch(with_nan)
    cases = [
        ({**good[0], first: "3.5"}, rf"field '{first}': expected a number"),
        ({k: v for k, v in good[0].items() if k != first}, rf"field '{first}': missing"),
        ({**good[0], "colour": 1.0}, r"field 'colour': not a feature of this model"),
        (list(good[0].values())[:-1], r"expected 4 values in signature order"),
    ]
    for row, message in cases:
        with pytest.raises(InvalidInput, match=message):
            model.predict(row)
    assert len(model.predict_batch([{**good[0], "colour": 1.0}], extra="ignore")) == 1


def test_passes_the_conformance_suite(artifact: Artifact, data: Data) -> None:
    model = artifact.model()
    tol = artifact.conformance_tol
    whole = check_model(model, dict_rows(model, data.x), atol=tol, rtol=tol)
    assert len(whole) == len(data.x)


def test_predicts_what_its_library_predicts(artifact: Artifact, data: Data) -> None:
    model = artifact.model()
    got = model.predict_batch(data.x).columns
    assert_matches(got, artifact.expected(data.x), atol=artifact.library_tol)


# -- framework not installed -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "module", "extra"),
    [
        ("onnx-binary", "onnxruntime", "onnx"),
        ("skops-binary", "skops.io", "skops"),
        ("lightgbm-binary", "lightgbm", "lightgbm"),
        ("xgboost-binary", "xgboost", "xgboost"),
    ],
)
def test_a_missing_framework_names_the_extra(
    case: str, module: str, extra: str, build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifact = build(case)
    signature = artifact.model().signature
    flavor = get_flavor(artifact.flavor)
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now fails as if it were not installed
    assert flavor.matches(artifact.path)  # recognising a file never imports the framework
    for call in (
        lambda: flavor.describe(artifact.path, {}),
        lambda: flavor.load(artifact.path, signature, {}),
        flavor.framework_versions,
    ):
        with pytest.raises(MissingExtra, match=rf"pip install 'foretell\[{extra}\]'") as caught:
            call()
        assert caught.value.extra == extra
        assert caught.value.module == module


# -- ONNX ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("task", "bound"), [("binary", 1e-6), ("regression", 1e-5)])
def test_onnx_float32_stays_close_to_scikit_learn(task: str, bound: float, build: Build, data: Data) -> None:
    """The graph computes in float32, scikit-learn in float64: measured gaps are 1.4e-7 on
    probabilities and 6.4e-7 on scores up to 6.7 in size."""
    onnx = build(f"onnx-{task}").model().predict_batch(data.x).columns
    sklearn = build(f"sklearn-{task}").expected(data.x)
    for name in sklearn:
        if name != "label":
            np.testing.assert_allclose(
                np.asarray(onnx[name], dtype=float), sklearn[name], rtol=0, atol=bound, err_msg=name
            )


def test_onnx_takes_one_input_per_feature(tmp_path: Path, data: Data, as_model: AsModel) -> None:
    import onnxruntime as ort
    import pandas as pd
    from skl2onnx import to_onnx
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = pd.DataFrame({"age": data.x[:, 0], "income": data.x[:, 1]}).astype(np.float32)
    pipeline = make_pipeline(ColumnTransformer([("scale", StandardScaler(), ["age", "income"])]), LinearRegression())
    pipeline.fit(frame, data.regression)
    path = tmp_path / "per_feature.onnx"
    path.write_bytes(to_onnx(pipeline, frame[:1]).SerializeToString())

    model = as_model("onnx", path, {})
    assert model.signature.input_names == ["age", "income"]
    rows = frame.astype(np.float64).to_dict("records")
    whole = check_model(model, rows, atol=1e-6, rtol=1e-6)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {name: frame[name].to_numpy().reshape(-1, 1) for name in ("age", "income")}
    np.testing.assert_array_equal(whole.column("score"), session.run(None, feeds)[0].reshape(-1))


def _graph(path: Path, input_shape: list[int | None], output_shape: list[int | None]) -> Path:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize(
    ("input_shape", "output_shape", "message"),
    [
        ([None, 3], [None, 3], r"cannot map the graph's outputs y \(tensor\(float\) \[None, 3\]\)"),
        ([1, 3], [1, 3], r"input 'x' has shape \[1, 3\]; its first axis must be a variable batch size"),
        ([None, 3, 2], [None, 3, 2], r"input 'x' has shape \[None, 3, 2\]"),
    ],
)
def test_onnx_refuses_graphs_it_cannot_map(
    tmp_path: Path, input_shape: list[int | None], output_shape: list[int | None], message: str
) -> None:
    path = _graph(tmp_path / "identity.onnx", input_shape, output_shape)
    with pytest.raises(UnsupportedModel, match=message):
        get_flavor("onnx").describe(path, {})


def test_onnx_load_refuses_a_signature_of_the_wrong_kind(build: Build) -> None:
    artifact = build("onnx-regression")
    classifier = build("onnx-binary").model().signature
    with pytest.raises(UnsupportedModel, match="the signature describes a classifier"):
        get_flavor("onnx").load(artifact.path, classifier, {})


def test_onnx_threads_default_to_one(build: Build) -> None:
    artifact = build("onnx-regression")
    session = get_flavor("onnx").load(artifact.path, artifact.model().signature, {})._session  # type: ignore[attr-defined]
    assert session.get_session_options().intra_op_num_threads == 1
    assert session.get_session_options().inter_op_num_threads == 1
    with pytest.raises(UnsupportedModel, match="num_threads must be a whole number ≥ 1; got 0"):
        get_flavor("onnx").load(artifact.path, artifact.model().signature, {"num_threads": 0})


# -- LightGBM and XGBoost specifics ----------------------------------------------------------------


@pytest.mark.parametrize("case", ["lightgbm-binary", "xgboost-multiclass", "xgboost-regression"])
def test_trees_take_missing_values(case: str, build: Build, data: Data) -> None:
    artifact = build(case)
    x = data.x.copy()
    x[::3, 0] = np.nan
    x[1::4, 2] = np.nan
    got = artifact.model().predict_batch(x).columns
    assert_matches(got, artifact.expected(x), atol=artifact.library_tol)


def test_lightgbm_reads_pandas_categories(tmp_path: Path, as_model: AsModel) -> None:
    import lightgbm
    import pandas as pd

    rng = np.random.default_rng(3)
    colour = pd.Categorical(rng.choice(["red", "green", "blue"], size=60), categories=["blue", "green", "red"])
    frame = pd.DataFrame({"size": rng.normal(size=60), "colour": colour})
    target = ((frame["size"] > 0) ^ (frame["colour"] == "green")).astype(int)
    params: dict[str, Any] = {
        "n_estimators": 8,
        "num_leaves": 4,
        "min_child_samples": 3,
        "min_data_per_group": 3,
        "verbose": -1,
    }
    estimator = lightgbm.LGBMClassifier(**params).fit(frame, target)
    path = tmp_path / "model.txt"
    estimator.booster_.save_model(path)

    model = as_model("lightgbm", path, {})
    assert model.signature.feature("colour") == Feature("colour", "category", True, ("blue", "green", "red"))
    rows = frame.assign(colour=frame["colour"].astype(str)).to_dict("records")
    whole = check_model(model, rows)
    np.testing.assert_allclose(
        np.asarray(whole.column("proba"), dtype=float), estimator.predict_proba(frame), rtol=0, atol=1e-12
    )


def test_xgboost_softmax_gives_probabilities(tmp_path: Path, data: Data, as_model: AsModel) -> None:
    import xgboost

    booster = xgboost.train(
        {"objective": "multi:softmax", "num_class": 3, "max_depth": 2, "nthread": 1},
        xgboost.DMatrix(data.x, data.multiclass),
        num_boost_round=6,
    )
    path = tmp_path / "softmax.json"
    booster.save_model(path)
    model = as_model("xgboost", path, {})
    assert model.signature.output_names == ["label", "proba"]
    whole = check_model(model, data.x)
    assert whole.column("label").tolist() == booster.predict(xgboost.DMatrix(data.x)).astype(int).tolist()
    np.testing.assert_allclose(whole.column("proba").sum(axis=1), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", ["lightgbm-regression", "xgboost-binary"])
def test_load_refuses_a_signature_of_another_width(case: str, build: Build) -> None:
    artifact = build(case)
    narrow = Signature((Feature("only"),), (Output("score", "score"),))
    with pytest.raises(UnsupportedModel, match=r"the booster takes 4 features but the signature lists 1: \['only'\]"):
        get_flavor(artifact.flavor).load(artifact.path, narrow, {})


@pytest.mark.parametrize(
    ("flavor", "name", "content", "message"),
    [
        ("lightgbm", "broken.txt", b"tree\nversion=v4\nnot a model\n", "LightGBM could not load broken.txt"),
        ("xgboost", "broken.json", b'{"learner": {"objective": 1}}', "XGBoost could not load broken.json"),
        ("onnx", "broken.onnx", b"\x00\x01 not protobuf", "onnxruntime could not load broken.onnx"),
    ],
)
def test_a_corrupt_file_is_a_load_error(tmp_path: Path, flavor: str, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert detect_flavor(path).name == flavor  # the cheap sniff accepts it; the framework does not
    with pytest.raises(ModelLoadError, match=message):
        get_flavor(flavor).describe(path, {})


# -- the conformance suite catches broken models ---------------------------------------------------


class _Centered:
    """Scores each row against the batch mean: the answer depends on which rows came along."""

    def predict(self, frame: Frame, options: PredictOptions) -> dict[str, np.ndarray]:
        x = frame.matrix()
        return {"score": x[:, 0] - x[:, 0].mean()}


class _Reversed:
    """Gives the right scores in the wrong row order."""

    def predict(self, frame: Frame, options: PredictOptions) -> dict[str, np.ndarray]:
        return {"score": frame.matrix()[::-1, 0].copy()}


class _Flaky:
    """A label that flips when the batch is one row long."""

    def predict(self, frame: Frame, options: PredictOptions) -> dict[str, np.ndarray]:
        label = np.zeros(frame.n_rows, dtype=np.int64) + (frame.n_rows == 1)
        return {"label": label}


def _fake(loaded: object, outputs: tuple[Output, ...]) -> Model:
    signature = Signature((Feature("a"), Feature("b")), outputs)
    info = ModelInfo("broken", 1, "python", signature, "0" * 64, 0, "2025-01-01T00:00:00+00:00")
    return Model(info, Predictor(loaded, signature, "broken"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("loaded", "outputs", "message"),
    [
        (_Centered(), (Output("score", "score"),), r"output 'score': predicting 6 rows in 2 parts \(3\+3\) differs"),
        (_Reversed(), (Output("score", "score"),), r"in 2 parts \(3\+3\) differs .* max abs diff"),
        (_Flaky(), (Output("label", "label", "int64"),), r"row 0: predicting the row alone differs .* 1 instead of 0"),
    ],
)
def test_conformance_names_the_broken_promise(loaded: object, outputs: tuple[Output, ...], message: str) -> None:
    rows = np.arange(12, dtype=np.float64).reshape(6, 2)
    with pytest.raises(AssertionError, match=message):
        check_model(_fake(loaded, outputs), rows)


# -- skops: loading never runs code from the file ------------------------------------------------------


def test_skops_refuses_a_type_it_was_not_told_to_trust_at_every_load(build: Build) -> None:
    artifact = build("skops-binary")
    flavor = get_flavor("skops")
    signature = artifact.model().signature
    for call in (lambda: flavor.describe(artifact.path, {}), lambda: flavor.load(artifact.path, signature, {})):
        with pytest.raises(ModelLoadError, match=r"does not trust by default: sklearn\.tree\._tree\.Tree") as caught:
            call()
        assert "--trust sklearn.tree._tree.Tree" in str(caught.value)


def test_skops_refuses_a_file_whose_types_changed_since_they_were_trusted(tmp_path: Path, data: Data) -> None:
    """A file holding a type of its own (code that would run at load) is refused even when Tree is trusted."""
    import skops.io as sio
    from sklearn.ensemble import GradientBoostingClassifier

    (tmp_path / "planted.py").write_text(
        "from sklearn.ensemble import GradientBoostingClassifier\n\n"
        "class Planted(GradientBoostingClassifier):\n    pass\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import planted

        estimator = planted.Planted(n_estimators=5).fit(data.x, data.binary)
        sio.dump(estimator, tmp_path / "model.skops")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("planted", None)
    assert isinstance(estimator, GradientBoostingClassifier)
    flavor = get_flavor("skops")
    with pytest.raises(ModelLoadError, match=r"does not trust by default: planted\.Planted;"):
        flavor.describe(tmp_path / "model.skops", {"trusted": ["sklearn.tree._tree.Tree"]})


def test_skops_predicts_what_joblib_predicts_for_the_same_estimator(
    tmp_path: Path, data: Data, as_model: AsModel
) -> None:
    import joblib
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    estimator = LogisticRegression().fit(data.x, data.binary)
    joblib.dump(estimator, tmp_path / "model.joblib")
    sio.dump(estimator, tmp_path / "model.skops")  # every type in it is trusted by default: no options needed
    pickled = as_model("sklearn", tmp_path / "model.joblib", {})
    safe = as_model("skops", tmp_path / "model.skops", {})
    got, want = safe.predict_batch(data.x), pickled.predict_batch(data.x)
    np.testing.assert_array_equal(np.asarray(got.column("score")), np.asarray(want.column("score")))
