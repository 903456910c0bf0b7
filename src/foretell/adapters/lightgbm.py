"""LightGBM boosters saved in LightGBM's own text format (`booster.save_model("model.txt")`).

Such a file starts with the line `tree`, which is how `matches` knows one without
importing LightGBM. Loading it runs no Python code.

Objectives: `binary` is a classifier over classes 0 and 1, `multiclass` and
`multiclassova` over 0..k-1; every other objective with one output per row
(regression, poisson, quantile, lambdarank, cross_entropy, ...) gives a `score`, the
value `Booster.predict` returns.

Every feature allows missing values: LightGBM sends NaN down a branch learned in training.

Categorical features reach LightGBM as integer codes. When the booster was fitted on
a pandas DataFrame, the file records each categorical column's categories
(`pandas_categorical`); if they are strings the signature lists them, so callers may
send `"red"` or its code, and a missing value (NaN) is what pandas gives LightGBM for
an unseen one. Otherwise a categorical feature is a float64 column that takes the code
as the model saw it in training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from foretell.adapters.base import FlavorOptions, import_framework
from foretell.adapters.outputs import classifier_outputs, classifier_result, regressor_outputs
from foretell.core.feature import Feature
from foretell.core.frame import Array, Frame
from foretell.core.predictor import PredictOptions
from foretell.core.schema import Signature
from foretell.errors import ModelLoadError, UnsupportedModel

SUFFIXES = (".txt", ".lgb", ".model")
_CLASSIFIERS = ("binary", "multiclass", "multiclassova")


class LightGBMModel:
    """A booster called once per batch on the frame as one float64 matrix."""

    def __init__(self, booster: Any, signature: Signature) -> None:
        self._booster = booster
        is_classifier = "proba" in signature.output_names
        self._classes = np.asarray(signature.output("proba").classes) if is_classifier else None

    def predict(self, frame: Frame, options: PredictOptions) -> dict[str, Array]:
        raw = np.asarray(self._booster.predict(frame.matrix(np.float64)), dtype=np.float64)
        if self._classes is None:
            return {"score": raw}
        # binary predicts P(class 1) per row; the multiclass objectives a row per class.
        proba = np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw
        return classifier_result(proba, self._classes)


class LightGBMFlavor:
    name = "lightgbm"

    def matches(self, path: Path) -> bool:
        if not path.is_file() or path.suffix.lower() not in SUFFIXES:
            return False
        try:
            with path.open("rb") as file:
                first = file.readline(16)
        except OSError:
            return False
        return first.strip() == b"tree"

    def describe(self, path: Path, options: FlavorOptions) -> Signature | None:
        booster = self._read(path)
        # One iteration is enough: the header (objective, features, categories) is what is read.
        header = booster.dump_model(num_iteration=1)
        objective = str(header.get("objective", "")).split(" ")[0]
        n_outputs = booster.num_model_per_iteration()
        if objective in _CLASSIFIERS:
            outputs = classifier_outputs(list(range(max(2, n_outputs))))
        elif n_outputs == 1:
            outputs = regressor_outputs()
        else:
            raise UnsupportedModel(
                f"{path.name}: objective {objective!r} gives {n_outputs} values per row; foretell reads "
                f"one score, or class probabilities from the {', '.join(_CLASSIFIERS)} objectives"
            )
        return Signature(_inputs(header), outputs)

    def load(self, path: Path, signature: Signature, options: FlavorOptions) -> LightGBMModel:
        booster = self._read(path)
        width = booster.num_feature()
        if len(signature.inputs) != width:
            raise UnsupportedModel(
                f"{path.name}: the booster takes {width} features but the signature lists "
                f"{len(signature.inputs)}: {signature.input_names}"
            )
        return LightGBMModel(booster, signature)

    def framework_versions(self) -> dict[str, str]:
        lightgbm = import_framework(self.name, "lightgbm", "lightgbm")
        return {"lightgbm": lightgbm.__version__}

    def _read(self, path: Path) -> Any:
        lightgbm = import_framework(self.name, "lightgbm", "lightgbm")
        try:
            return lightgbm.Booster(model_file=str(path))
        except Exception as exc:
            raise ModelLoadError(f"LightGBM could not load {path.name}: {type(exc).__name__}: {exc}") from exc


def _inputs(header: dict[str, Any]) -> tuple[Feature, ...]:
    names = [str(name) for name in header["feature_names"]]
    infos = header.get("feature_infos") or {}
    # A categorical feature lists the category codes it saw; a numeric one only a range.
    categorical = [name for name in names if (infos.get(name) or {}).get("values")]
    recorded = header.get("pandas_categorical") or []
    labelled: dict[str, tuple[str, ...]] = {}
    strings = all(cats and all(isinstance(c, str) for c in cats) for cats in recorded)
    if recorded and len(recorded) == len(categorical) and strings:
        # LightGBM stores the categories of the DataFrame's category columns in column order.
        labelled = {name: tuple(cats) for name, cats in zip(categorical, recorded, strict=True)}
    return tuple(
        Feature(name, "category", allow_missing=True, categories=labelled[name])
        if name in labelled
        else Feature(name, "float64", allow_missing=True)
        for name in names
    )
