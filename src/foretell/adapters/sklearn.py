"""scikit-learn estimators and pipelines saved with joblib.

Loading a joblib/pickle file runs code from that file: the registry verifies the
artifact's sha256 before this flavor ever opens it, and only files you registered
yourself should be trusted (see docs/security.md).
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
from foretell.core.schema import Signature, default_feature_names
from foretell.errors import ModelLoadError, UnsupportedModel

SUFFIXES = (".joblib", ".pkl", ".pickle")


class SklearnModel:
    """A fitted estimator called with one float matrix per batch (or a DataFrame if it was fitted on one)."""

    def __init__(self, estimator: Any, signature: Signature) -> None:
        self._estimator = estimator
        self._names = signature.input_names
        self._wants_frame = hasattr(estimator, "feature_names_in_") or not signature.is_float_matrix
        self._classes = np.asarray(getattr(estimator, "classes_", [])) if _is_classifier(estimator) else None

    def predict(self, frame: Frame, options: PredictOptions) -> dict[str, Array]:
        features: Any = self._dataframe(frame) if self._wants_frame else frame.matrix(np.float64)
        if self._classes is not None:
            return classifier_result(self._estimator.predict_proba(features), self._classes)
        return {"score": np.asarray(self._estimator.predict(features), dtype=np.float64)}

    def _dataframe(self, frame: Frame) -> Any:
        import pandas as pd

        return pd.DataFrame({name: frame[name] for name in self._names}, copy=False)


def _is_classifier(estimator: Any) -> bool:
    from sklearn.base import is_classifier

    return bool(is_classifier(estimator)) and hasattr(estimator, "predict_proba")


class SklearnFlavor:
    name = "sklearn"

    def matches(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() in SUFFIXES

    def describe(self, path: Path, options: FlavorOptions) -> Signature | None:
        estimator = self._read(path, options)
        return Signature(_inputs(estimator), _outputs(estimator))

    def load(self, path: Path, signature: Signature, options: FlavorOptions) -> SklearnModel:
        return SklearnModel(self._read(path, options), signature)

    def framework_versions(self) -> dict[str, str]:
        sklearn = import_framework(self.name, "sklearn", "sklearn")
        joblib = import_framework(self.name, "joblib", "sklearn")
        return {"scikit-learn": sklearn.__version__, "joblib": joblib.__version__}

    def _read(self, path: Path, options: FlavorOptions) -> Any:
        joblib = import_framework(self.name, "joblib", "sklearn")
        try:
            estimator = joblib.load(path)
        except Exception as exc:
            raise ModelLoadError(f"could not load {path.name} with joblib: {type(exc).__name__}: {exc}") from exc
        return predicting(estimator, path)


def predicting(estimator: Any, path: Path) -> Any:
    """`estimator`, if it can predict; else `UnsupportedModel` saying what `path` holds."""
    if not hasattr(estimator, "predict"):
        raise UnsupportedModel(f"{path.name} holds a {type(estimator).__name__}, which has no predict method")
    return estimator


def _inputs(estimator: Any) -> tuple[Feature, ...]:
    from sklearn.utils import get_tags

    allow_nan = bool(get_tags(estimator).input_tags.allow_nan)
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        n = getattr(estimator, "n_features_in_", None)
        if n is None:
            raise UnsupportedModel(
                f"cannot tell how many features a {type(estimator).__name__} takes; give a signature or sample data"
            )
        names = default_feature_names(int(n))
    return tuple(Feature(str(name), "float64", allow_missing=allow_nan) for name in names)


def _outputs(estimator: Any) -> tuple[Any, ...]:
    if _is_classifier(estimator):
        return classifier_outputs(list(estimator.classes_))
    return regressor_outputs()
