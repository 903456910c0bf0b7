"""Open Inference Protocol tensors ↔ a model's rows and outputs, by its signature.

A tabular model takes one 2-D tensor with the features in signature order, or one 1-D
(or [n, 1]) tensor per feature, named as the features; a one-feature model (the
recommender's `user_id`) takes that one tensor. Outputs go back one tensor each.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from foretell.core.predictor import Predictions
from foretell.core.schema import Signature
from foretell.errors import InvalidInput
from foretell.protocols.oip import Tensor, tensor_from_array

__all__ = ["inputs_from_tensors", "tensors_from_predictions"]


def inputs_from_tensors(signature: Signature, tensors: list[Tensor]) -> Any:
    """Something `Signature.coerce` accepts, built from the request's tensors."""
    names = signature.input_names
    if not tensors:
        raise InvalidInput(f"the request has no inputs; the model takes {names}")
    if len(tensors) == 1 and len(tensors[0].shape) == 2 and tensors[0].name not in names:
        data = tensors[0].data
        if data.dtype == object:
            data = np.vectorize(_text, otypes=[object])(data)
        return data
    by_name = {t.name: t for t in tensors}
    unknown = sorted(set(by_name) - set(names))
    missing = [f.name for f in signature.inputs if f.name not in by_name and f.required]
    if unknown or missing:
        raise InvalidInput(
            f"inputs must be one 2-D tensor with the {len(names)} features in signature order, or one tensor per "
            f"feature {names}; "
            + "; ".join(
                p for p in (f"missing {missing}" if missing else "", f"unknown {unknown}" if unknown else "") if p
            )
        )
    columns = {}
    rows = None
    for name in (n for n in names if n in by_name):  # optional features may be left out
        tensor = by_name[name]
        if len(tensor.shape) == 2 and tensor.shape[1] == 1:
            data = tensor.data.reshape(-1)
        elif len(tensor.shape) == 1:
            data = tensor.data
        else:
            raise InvalidInput(f"input {name!r}: shape {list(tensor.shape)} is not [n] or [n, 1]")
        if rows is not None and len(data) != rows:
            raise InvalidInput(f"input {name!r} has {len(data)} rows, the other inputs have {rows}")
        rows = len(data)
        columns[name] = pa.array([_text(v) for v in data] if data.dtype == object else data)
    return pa.table(columns)


def _text(value: Any) -> Any:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def tensors_from_predictions(predictions: Predictions, names: list[str] | None = None) -> list[Tensor]:
    """The named outputs (default: every output, in signature order) as tensors, in that order."""
    if names is None:
        names = [o.name for o in predictions.outputs]
    return [tensor_from_array(name, predictions.column(name)) for name in names]
