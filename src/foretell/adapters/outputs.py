"""The output shapes flavors share: classifiers give label + proba (+ score when binary), regressors a score."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from foretell.core.frame import Array
from foretell.core.schema import Label, Output

__all__ = ["classifier_outputs", "classifier_result", "label_dtype", "regressor_outputs"]


def label_dtype(classes: Sequence[Any]) -> str:
    values = np.asarray(classes)
    if values.dtype.kind == "b":
        return "bool"
    if values.dtype.kind in "iu":
        return "int64"
    if values.dtype.kind == "f":
        return "float64"
    return "string"


def _plain_labels(classes: Sequence[Any]) -> tuple[Label, ...]:
    return tuple(np.asarray(classes).tolist())


def classifier_outputs(classes: Sequence[Any]) -> tuple[Output, ...]:
    """`label`, `proba` (one column per class, in `classes` order) and, for two classes, `score`
    (the probability of the second class, as scikit-learn orders them: the "positive" one)."""
    labels = _plain_labels(classes)
    outputs = [
        Output("label", "label", label_dtype(labels)),
        Output("proba", "proba", "float64", shape=(len(labels),), classes=labels),
    ]
    if len(labels) == 2:
        outputs.insert(0, Output("score", "score", "float64"))
    return tuple(outputs)


def regressor_outputs() -> tuple[Output, ...]:
    return (Output("score", "score", "float64"),)


def classifier_result(proba: Array, classes: Array) -> dict[str, Array]:
    """Outputs named as `classifier_outputs` from one probability matrix (rows × classes)."""
    proba = np.asarray(proba, dtype=np.float64)
    result = {"label": classes[np.argmax(proba, axis=1)], "proba": proba}
    if proba.shape[1] == 2:
        result["score"] = proba[:, 1]
    return result
