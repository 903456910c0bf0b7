"""Open Inference Protocol tensors ↔ a model's rows and outputs, by its signature.

A tabular model takes one 2-D tensor with the features in signature order, or one 1-D
(or [n, 1]) tensor per feature, named as the features; a one-feature model (the
recommender's `user_id`) takes that one tensor. Outputs go back one tensor each.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from foretell.core.coerce import plan_of
from foretell.core.columns import Plan
from foretell.core.frame import Frame
from foretell.core.predictor import Predictions
from foretell.core.schema import Signature
from foretell.errors import InvalidInput
from foretell.protocols.oip import DATATYPES, InferRequest, Tensor, TensorBlock, tensor_from_array

__all__ = ["inputs_from_request", "inputs_from_tensors", "tensors_from_predictions"]

_NUMBERS = frozenset(DATATYPES) - {"BYTES", "BOOL"}


def inputs_from_request(signature: Signature, request: InferRequest) -> Any:
    """What `inputs_from_tensors` gives for the request's inputs; from its blocks, when they hold the model's matrix.

    A float-matrix model sent one tensor per feature gets the rows × features matrix of
    its features, in signature order, built with a few numpy calls from the blocks the
    decoder made (category names become codes here): coercion then checks it as the
    2-D array it is, as fast as one [n, features] tensor. Anything else goes tensor by
    tensor; so does anything these blocks cannot hold without a closer look (a name that
    is not a feature, a missing feature, an unknown category, a shape other than [n] or
    [n, 1], BOOL or text for a number), and there coercion says what is wrong.
    """
    if request.blocks is not None:
        matrix = _float_matrix(plan_of(signature), request.blocks)
        if matrix is not None:
            return matrix
    return inputs_from_tensors(signature, request.inputs)


def _float_matrix(plan: Plan, blocks: list[TensorBlock]) -> np.ndarray | None:
    shape = blocks[0].shape
    if not plan.float_matrix or not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        return None
    first = blocks[0]
    if len(blocks) == 1 and first.datatype in _NUMBERS and list(first.names) == plan.names:
        return first.data.T  # already in signature order: the columns are its rows
    by_feature = np.empty((plan.width, shape[0]), dtype=np.float64)
    found = 0
    for block in blocks:
        place = _place(plan, block.names, block.datatype)
        if place is None:
            return None
        at, lookups = place
        found += len(at)
        if lookups is None:
            by_feature[at] = block.data
        else:
            codes = _category_codes(lookups, block.data)
            if codes is None:
                return None
            by_feature[at] = codes
    return by_feature.T if found == plan.width else None  # the decoder refuses repeated names


_Place = tuple[np.ndarray, list[dict[str, int]] | None]

# Where a block's inputs go in a model's matrix, by plan and names: the decoder hands out the
# same names for each request of a structure it has seen, so this is worked out once per structure.
_PLACES: dict[tuple[Plan, tuple[str, ...], str], _Place | None] = {}
_MAX_PLACES = 256


def _place(plan: Plan, names: tuple[str, ...], datatype: str) -> _Place | None:
    """A block's rows in signature order, and each one's category codes for BYTES; None if they do not fit."""
    key = (plan, names, datatype)
    try:
        return _PLACES[key]
    except KeyError:
        pass
    place: _Place | None = None
    try:
        at = list(map(plan.index.__getitem__, names))
    except KeyError:
        at = None
    if at is not None and datatype in _NUMBERS:
        place = np.array(at, dtype=np.intp), None
    elif at is not None and datatype == "BYTES":
        lookups = [plan.codes[plan.names[position]] for position in at]
        if all(lookups):  # not a category: text for a number is refused tensor by tensor
            place = np.array(at, dtype=np.intp), lookups
    if len(_PLACES) >= _MAX_PLACES:
        _PLACES.clear()
    _PLACES[key] = place
    return place


def _category_codes(lookups: list[dict[str, int]], data: np.ndarray) -> list[list[int]] | None:
    """Category names (UTF-8 bytes) → their codes, feature by feature; None if any is not a known name."""
    try:
        return [[lookup[name.decode()] for name in names] for lookup, names in zip(lookups, data.tolist(), strict=True)]
    except (KeyError, UnicodeDecodeError):
        return None


def inputs_from_tensors(signature: Signature, tensors: list[Tensor]) -> Any:
    """Something `Signature.coerce` accepts, built from the request's tensors.

    One 2-D tensor is the 2-D array it holds. Tensors per feature become a `Frame` of their
    buffers as they are (no table, no copy), which coercion checks and stacks like the
    columns of any other bulk input; BYTES become text, which coercion looks up in a
    category's names once per column.
    """
    plan = plan_of(signature)
    if not tensors:
        raise InvalidInput(f"the request has no inputs; the model takes {plan.names}")
    if len(tensors) == 1 and len(tensors[0].shape) == 2 and tensors[0].name not in plan.index:
        data = tensors[0].data
        if data.dtype == object:
            data = np.vectorize(_text, otypes=[object])(data)
        return data
    by_name = {t.name: t for t in tensors}
    if by_name.keys() != plan.index.keys():
        _check_names(signature, plan.names, by_name)
    columns = {}
    rows = None
    for name in plan.names:
        tensor = by_name.get(name)
        if tensor is None:  # an optional feature left out
            continue
        shape = tensor.shape
        if len(shape) == 1:
            data = tensor.data
        elif len(shape) == 2 and shape[1] == 1:
            data = tensor.data.reshape(-1)
        else:
            raise InvalidInput(f"input {name!r}: shape {list(shape)} is not [n] or [n, 1]")
        if rows is not None and len(data) != rows:
            raise InvalidInput(f"input {name!r} has {len(data)} rows, the other inputs have {rows}")
        rows = len(data)
        columns[name] = _texts(data) if data.dtype == object else data
    return Frame(columns, n_rows=rows)


def _check_names(signature: Signature, names: list[str], by_name: dict[str, Tensor]) -> None:
    """Refuse tensors that are not the features (optional ones may be left out), saying which."""
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


def _text(value: Any) -> Any:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _texts(data: np.ndarray) -> np.ndarray:
    """A BYTES column as text; bytes that are not UTF-8 keep their readable part, so a refusal can show it."""
    out = np.empty(len(data), dtype=object)
    out[:] = [v.decode("utf-8", errors="replace") if type(v) is bytes else _text(v) for v in data.tolist()]
    return out


def tensors_from_predictions(predictions: Predictions, names: list[str] | None = None) -> list[Tensor]:
    """The named outputs (default: every output, in signature order) as tensors, in that order."""
    if names is None:
        names = [o.name for o in predictions.outputs]
    return [tensor_from_array(name, predictions.column(name)) for name in names]
