"""XGBoost boosters saved in XGBoost's own formats: JSON (`model.json`) or UBJSON (`model.ubj`).

Both start with the booster's `learner` object, which is how `matches` knows one
without importing XGBoost (a `.json` file that is not a model does not match). Loading
either runs no Python code. The legacy binary format is not read: re-save such a model
with a current XGBoost as `.json` or `.ubj`.

Objectives (read from `save_config()`): `binary:logistic` is a classifier over classes
0 and 1; `multi:softprob` and `multi:softmax` over 0..k-1 (softmax models predict
labels only, so their probabilities are the softmax of the margins, which is what
`multi:softprob` computes). Every other objective (`reg:*`, `count:*`, `survival:*`,
`rank:*`, `binary:logitraw`, `binary:hinge`) gives a `score`, the value
`Booster.predict` returns.

Every feature allows missing values: XGBoost sends NaN down a branch learned in training.
Categorical features (`feature_types` "c") are float64 columns that take the category
code as the model saw it in training.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from foretell.adapters.base import FlavorOptions, import_framework
from foretell.adapters.outputs import classifier_outputs, classifier_result, regressor_outputs
from foretell.core.frame import Array, Frame
from foretell.core.predictor import PredictOptions
from foretell.core.schema import Signature, default_feature_names, numeric_features
from foretell.errors import ModelLoadError, UnsupportedModel

#: `{"learner":` at the very start (JSON), or the key `learner` as UBJSON spells it.
_JSON_HEAD = re.compile(rb'\A\s*\{\s*"learner"\s*:')
_UBJ_HEAD = re.compile(rb"\A\{[iUlLI].{0,8}learner", re.DOTALL)
_HEAD_BYTES = 64


class XGBoostModel:
    """A booster called once per batch with `inplace_predict`, which needs no DMatrix and is thread-safe."""

    def __init__(self, booster: Any, signature: Signature, objective: str) -> None:
        self._booster = booster
        is_classifier = "proba" in signature.output_names
        self._classes = np.asarray(signature.output("proba").classes) if is_classifier else None
        self._margins = objective == "multi:softmax"

    def predict(self, frame: Frame, options: PredictOptions) -> dict[str, Array]:
        matrix = frame.matrix(np.float64)
        if self._classes is None:
            return {"score": np.asarray(self._booster.inplace_predict(matrix), dtype=np.float64)}
        if self._margins:
            margins = np.asarray(self._booster.inplace_predict(matrix, predict_type="margin"), dtype=np.float64)
            exp = np.exp(margins - margins.max(axis=1, keepdims=True))
            return classifier_result(exp / exp.sum(axis=1, keepdims=True), self._classes)
        raw = np.asarray(self._booster.inplace_predict(matrix), dtype=np.float64)
        # binary:logistic predicts P(class 1) per row; multi:softprob a row per class.
        proba = np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw
        return classifier_result(proba, self._classes)


class XGBoostFlavor:
    name = "xgboost"

    def matches(self, path: Path) -> bool:
        suffix = path.suffix.lower()
        if suffix not in (".json", ".ubj") or not path.is_file():
            return False
        try:
            with path.open("rb") as file:
                head = file.read(_HEAD_BYTES)
        except OSError:
            return False
        return bool((_JSON_HEAD if suffix == ".json" else _UBJ_HEAD).match(head))

    def describe(self, path: Path, options: FlavorOptions) -> Signature | None:
        booster = self._read(path)
        objective, n_classes, n_targets = _learner(booster)
        if n_targets > 1:
            raise UnsupportedModel(
                f"{path.name}: the booster predicts {n_targets} targets per row; foretell reads one score "
                "or class probabilities"
            )
        names = booster.feature_names or default_feature_names(booster.num_features())
        inputs = numeric_features([str(name) for name in names], allow_missing=True)
        if objective == "binary:logistic":
            return Signature(inputs, classifier_outputs([0, 1]))
        if objective in ("multi:softprob", "multi:softmax"):
            return Signature(inputs, classifier_outputs(list(range(n_classes))))
        return Signature(inputs, regressor_outputs())

    def load(self, path: Path, signature: Signature, options: FlavorOptions) -> XGBoostModel:
        booster = self._read(path)
        width = booster.num_features()
        if len(signature.inputs) != width:
            raise UnsupportedModel(
                f"{path.name}: the booster takes {width} features but the signature lists "
                f"{len(signature.inputs)}: {signature.input_names}"
            )
        objective, _, _ = _learner(booster)
        return XGBoostModel(booster, signature, objective)

    def framework_versions(self) -> dict[str, str]:
        xgboost = import_framework(self.name, "xgboost", "xgboost")
        return {"xgboost": xgboost.__version__}

    def _read(self, path: Path) -> Any:
        xgboost = import_framework(self.name, "xgboost", "xgboost")
        try:
            return xgboost.Booster(model_file=str(path))
        except Exception as exc:
            raise ModelLoadError(f"XGBoost could not load {path.name}: {type(exc).__name__}: {exc}") from exc


def _learner(booster: Any) -> tuple[str, int, int]:
    """The objective's name, the number of classes and of targets, from the booster's configuration."""
    learner = json.loads(booster.save_config())["learner"]
    params = learner["learner_model_param"]
    return str(learner["objective"]["name"]), int(params["num_class"]), int(params.get("num_target", 1))
