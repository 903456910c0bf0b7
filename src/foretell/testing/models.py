"""Small real models for tests: they run the whole prediction path without a framework."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from foretell.core.feature import Feature
from foretell.core.frame import Array, Frame
from foretell.core.model import Model, ModelInfo
from foretell.core.predictor import LoadedModel, PredictOptions, Predictor
from foretell.core.schema import Output, Signature

__all__ = ["FailingModel", "SumModel", "model_of"]


class SumModel:
    """score = the sum of a row's numeric features (category codes count as their code)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.calls = 0

    def predict(self, frame: Frame, options: PredictOptions) -> dict[str, Array]:
        self.calls += 1
        total = np.zeros(frame.n_rows, dtype=np.float64)
        for name in self.names:
            total += np.nan_to_num(frame[name].astype(np.float64))
        return {"score": total}


class FailingModel:
    """Raises on every call, as a model with a bug would."""

    def predict(self, frame: Frame, options: PredictOptions) -> dict[str, Array]:
        raise ZeroDivisionError("the model divided by zero")


def model_of(loaded: LoadedModel, signature: Signature, name: str = "test") -> Model:
    """Wrap a loaded model as a registered `Model` (version 1) without touching a registry."""
    info = ModelInfo(name, 1, "python", signature, sha256="0" * 64, size_bytes=0, created_at="1970-01-01T00:00:00Z")
    return Model(info, Predictor(loaded, signature, name))


def sum_signature(names: Sequence[str] = ("a", "b", "c"), *, allow_missing: bool = False) -> Signature:
    return Signature(
        tuple(Feature(n, "float64", allow_missing=allow_missing) for n in names), (Output("score", "score"),)
    )
