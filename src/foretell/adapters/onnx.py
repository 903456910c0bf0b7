"""ONNX graphs, run with onnxruntime.

Loading an ONNX file runs no Python code from it, which makes ONNX one of the formats
that is safe to load from a source you do not fully trust.

Inputs take one of two layouts:

- one 2-D tensor `[batch, F]`: the features are the tensor's columns, named `f0`..
  (the registry may rename them from sample data; the order is what counts, so the
  frame is handed over as one matrix in signature order);
- one tensor per feature, `[batch]` or `[batch, 1]`: the features are named after the
  inputs (a lone numeric `[batch, 1]` input counts as the 2-D case, feature `f0`).

A `float` tensor is described as a float64 feature and cast to float32 per batch: the
graph computes in float32 anyway, and float64 columns keep coercion on its fast path.

Outputs: one float tensor `[batch]` or `[batch, 1]` is a regressor (`score`); a label
tensor plus a probability tensor `[batch, k]`, or plus a ZipMap sequence of
`{class: probability}` maps, is a classifier (`label`, `proba`, `score` when binary).
The classes are read from the graph's `ai.onnx.ml` classifier node.

Threads: a session gets one intra-op and one inter-op thread unless the flavor option
`num_threads` says otherwise. foretell scales by running one worker per core, each
with its own session; if every session also spread each call across all cores,
workers × threads would oversubscribe the CPU and tail latency would climb with load.
A lone batch job on an idle machine can raise it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from foretell.adapters.base import FlavorOptions, import_framework
from foretell.adapters.outputs import classifier_outputs, classifier_result, regressor_outputs
from foretell.core.feature import Feature
from foretell.core.frame import Array, Frame
from foretell.core.predictor import PredictOptions
from foretell.core.schema import Label, Signature, default_feature_names
from foretell.errors import ModelLoadError, UnsupportedModel

#: ONNX tensor type → (numpy dtype fed to the session, signature feature dtype).
_TENSOR_TYPES: dict[str, tuple[Any, str]] = {
    "tensor(float)": (np.float32, "float64"),
    "tensor(double)": (np.float64, "float64"),
    "tensor(int64)": (np.int64, "int64"),
    "tensor(int32)": (np.int32, "int32"),
    "tensor(bool)": (np.bool_, "bool"),
    "tensor(string)": (object, "string"),
}
_FLOATS = ("tensor(float)", "tensor(double)")
_LABELS = ("tensor(int64)", "tensor(int32)", "tensor(string)")


@dataclass(frozen=True, slots=True)
class _Input:
    name: str
    dtype: Any
    feature_dtype: str
    shape: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _Layout:
    """How a session's tensors map to features and outputs."""

    inputs: tuple[_Input, ...]
    width: int
    """Columns of the single 2-D input, or 0 when there is one input per feature."""
    score: str | None = None
    label: str | None = None
    proba: str | None = None
    zipmap: bool = False
    n_classes: int | None = None

    @property
    def is_classifier(self) -> bool:
        return self.proba is not None


class OnnxModel:
    """An onnxruntime session fed one batch per call, outputs renamed to the signature's."""

    releases_gil = True  # InferenceSession.run lets go of it while the graph runs

    def __init__(self, session: Any, layout: _Layout, signature: Signature) -> None:
        self._session = session
        self._layout = layout
        self._feeds = _feed_plan(layout, signature)
        self._classes = np.asarray(signature.output("proba").classes) if layout.is_classifier else None

    def predict(self, frame: Frame, options: PredictOptions) -> dict[str, Array]:
        layout = self._layout
        if layout.width:
            single = layout.inputs[0]
            feeds = {single.name: frame.matrix(single.dtype)}
        else:
            feeds = {
                tensor.name: np.asarray(frame[feature], dtype=tensor.dtype).reshape(-1, *tensor.shape[1:])
                for feature, tensor in self._feeds
            }
        if self._classes is None:
            (score,) = self._session.run([layout.score], feeds)
            return {"score": np.asarray(score, dtype=np.float64).reshape(-1)}
        label, proba = self._session.run([layout.label, layout.proba], feeds)
        if layout.zipmap:
            proba = [[row[c] for c in self._classes.tolist()] for row in proba]
        result = classifier_result(np.asarray(proba), self._classes)
        # The graph's own label, not argmax of float32 probabilities: they can tie, and
        # a converter may decide labels with logic of its own (a threshold, say).
        result["label"] = np.asarray(label).reshape(-1)
        return result


class OnnxFlavor:
    name = "onnx"

    def matches(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() == ".onnx"

    def describe(self, path: Path, options: FlavorOptions) -> Signature | None:
        layout = _layout(self._session(path, options), path)
        if layout.width:
            dtype = layout.inputs[0].feature_dtype
            inputs = tuple(Feature(name, dtype) for name in default_feature_names(layout.width))
        else:
            inputs = tuple(Feature(tensor.name, tensor.feature_dtype) for tensor in layout.inputs)
        if not layout.is_classifier:
            return Signature(inputs, regressor_outputs())
        return Signature(inputs, classifier_outputs(_classes(path, layout)))

    def load(self, path: Path, signature: Signature, options: FlavorOptions) -> OnnxModel:
        session = self._session(path, options)
        layout = _layout(session, path)
        is_classifier = "proba" in signature.output_names
        if layout.is_classifier != is_classifier:
            wants = "a classifier" if is_classifier else "a regressor"
            raise UnsupportedModel(
                f"{path.name}: the signature describes {wants} (outputs {signature.output_names}) "
                f"but the graph's outputs are {_shown_outputs(session)}"
            )
        return OnnxModel(session, layout, signature)

    def framework_versions(self) -> dict[str, str]:
        ort = import_framework(self.name, "onnxruntime", "onnx")
        return {"onnxruntime": ort.__version__}

    def _session(self, path: Path, options: FlavorOptions) -> Any:
        ort = import_framework(self.name, "onnxruntime", "onnx")
        threads = options.get("num_threads", 1)
        if type(threads) is not int or threads < 1:
            raise UnsupportedModel(f"onnx flavor option num_threads must be a whole number ≥ 1; got {threads!r}")
        settings = ort.SessionOptions()
        settings.intra_op_num_threads = threads
        settings.inter_op_num_threads = 1
        try:
            return ort.InferenceSession(str(path), sess_options=settings, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelLoadError(f"onnxruntime could not load {path.name}: {type(exc).__name__}: {exc}") from exc


# -- reading the session's tensors --------------------------------------------------------------------


def _layout(session: Any, path: Path) -> _Layout:
    """One numeric 2-D input is a matrix of features; otherwise every input is one feature."""
    inputs = tuple(_read_input(tensor, path) for tensor in session.get_inputs())
    first = inputs[0]
    if len(inputs) == 1 and len(first.shape) == 2 and first.feature_dtype not in ("string", "bool"):
        width = first.shape[1]
        if not isinstance(width, int):
            raise UnsupportedModel(
                f"{path.name}: input {first.name!r} has shape {list(first.shape)}; foretell needs a fixed "
                f"number of columns to map features onto, got {width!r}"
            )
        return _outputs(session, path, inputs, width)
    for tensor in inputs:
        if len(tensor.shape) not in (1, 2) or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise UnsupportedModel(
                f"{path.name}: input {tensor.name!r} has shape {list(tensor.shape)}; foretell maps one "
                "numeric [batch, F] input, or one input per feature shaped [batch] or [batch, 1]"
            )
    return _outputs(session, path, inputs, 0)


def _read_input(tensor: Any, path: Path) -> _Input:
    known = _TENSOR_TYPES.get(tensor.type)
    if known is None:
        raise UnsupportedModel(
            f"{path.name}: input {tensor.name!r} is a {tensor.type}; foretell feeds only {', '.join(_TENSOR_TYPES)}"
        )
    shape = tuple(tensor.shape)
    if not shape or (isinstance(shape[0], int) and shape[0] > 0):
        raise UnsupportedModel(
            f"{path.name}: input {tensor.name!r} has shape {list(shape)}; its first axis must be a "
            "variable batch size (export the model with a dynamic batch axis)"
        )
    return _Input(tensor.name, known[0], known[1], shape)


def _outputs(session: Any, path: Path, inputs: tuple[_Input, ...], width: int) -> _Layout:
    tensors = session.get_outputs()
    if len(tensors) == 1 and tensors[0].type in _FLOATS and _is_column(tensors[0].shape):
        return _Layout(inputs, width, score=tensors[0].name)
    if len(tensors) == 2:
        labels = [t for t in tensors if t.type in _LABELS and _is_column(t.shape)]
        probas = [t for t in tensors if _is_probability(t)]
        if len(labels) == 1 and len(probas) == 1:
            proba = probas[0]
            zipmap = proba.type.startswith("seq(map(")
            k = None if zipmap else proba.shape[1]
            return _Layout(
                inputs,
                width,
                label=labels[0].name,
                proba=proba.name,
                zipmap=zipmap,
                n_classes=k if isinstance(k, int) else None,
            )
    raise UnsupportedModel(
        f"{path.name}: cannot map the graph's outputs {_shown_outputs(session)}; foretell reads one float "
        "tensor [batch] or [batch, 1] (a regressor) or a label tensor plus probabilities [batch, k] "
        "or a ZipMap (a classifier)"
    )


def _is_column(shape: Sequence[Any]) -> bool:
    return len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)


def _is_probability(tensor: Any) -> bool:
    if tensor.type.startswith("seq(map("):
        return True
    return tensor.type in _FLOATS and len(tensor.shape) == 2


def _shown_outputs(session: Any) -> str:
    return ", ".join(f"{t.name} ({t.type} {list(t.shape)})" for t in session.get_outputs())


def _feed_plan(layout: _Layout, signature: Signature) -> list[tuple[str, _Input]]:
    """Pair each signature feature with the graph input it feeds."""
    names = signature.input_names
    if layout.width:
        if len(names) != layout.width:
            raise UnsupportedModel(
                f"the graph's input {layout.inputs[0].name!r} takes {layout.width} columns "
                f"but the signature lists {len(names)} features"
            )
        return []
    by_name = {tensor.name: tensor for tensor in layout.inputs}
    if set(names) == set(by_name):
        return [(name, by_name[name]) for name in names]
    if len(names) != len(layout.inputs):
        raise UnsupportedModel(
            f"the graph has {len(layout.inputs)} inputs {list(by_name)} "
            f"but the signature lists {len(names)} features {names}"
        )
    # Renamed features (from sample data, say) feed the inputs in signature order.
    return list(zip(names, layout.inputs, strict=True))


# -- class labels, read from the graph ----------------------------------------------------------------


def _classes(path: Path, layout: _Layout) -> list[Label]:
    try:
        classes = graph_classes(path.read_bytes())
    except (ValueError, IndexError) as exc:
        raise UnsupportedModel(f"{path.name}: could not read the class labels from the graph: {exc}") from exc
    if classes is None:
        if layout.n_classes is None:
            raise UnsupportedModel(
                f"{path.name}: the graph names no class labels and its probability output has no fixed "
                "width; give the signature explicitly"
            )
        return list(range(layout.n_classes))
    if layout.n_classes is not None and len(classes) != layout.n_classes:
        raise UnsupportedModel(
            f"{path.name}: the graph lists {len(classes)} class labels but its probability output "
            f"has {layout.n_classes} columns"
        )
    return classes


#: Protobuf field numbers from onnx.proto: ModelProto.graph, GraphProto.node,
#: NodeProto.{op_type, attribute, domain}, AttributeProto.{name, ints, strings}.
_MODEL_GRAPH, _GRAPH_NODE = 7, 1
_NODE_OP, _NODE_ATTRIBUTE, _NODE_DOMAIN = 4, 5, 7
_ATTR_NAME, _ATTR_INTS, _ATTR_STRINGS = 1, 8, 9
_LABEL_ATTRIBUTES = (b"classlabels_int64s", b"classlabels_ints", b"classlabels_strings")


def graph_classes(model: bytes) -> list[Label] | None:
    """Class labels of the last `ai.onnx.ml` node that lists them (a classifier or its ZipMap).

    onnxruntime does not expose graph nodes and the `onnx` package is not a dependency
    of this flavor, so the few fields needed are read from the protobuf wire format
    directly. Nodes are stored in topological order: the last one listing labels is
    the one nearest the outputs.
    """
    found: list[Label] | None = None
    for number, graph in _fields(memoryview(model)):
        if number != _MODEL_GRAPH or isinstance(graph, int):
            continue
        for field, node in _fields(graph):
            if field == _GRAPH_NODE and not isinstance(node, int):
                labels = _node_labels(node)
                found = labels if labels is not None else found
    return found


def _node_labels(node: memoryview) -> list[Label] | None:
    domain = b""
    labels: list[Label] | None = None
    for number, value in _fields(node):
        if number == _NODE_DOMAIN and not isinstance(value, int):
            domain = bytes(value)
        elif number == _NODE_ATTRIBUTE and not isinstance(value, int):
            labels = _attribute_labels(value) or labels
    return labels if domain == b"ai.onnx.ml" else None


def _attribute_labels(attribute: memoryview) -> list[Label] | None:
    name = b""
    ints: list[Label] = []
    strings: list[Label] = []
    for number, value in _fields(attribute):
        if number == _ATTR_NAME and not isinstance(value, int):
            name = bytes(value)
        elif number == _ATTR_INTS:
            # proto2 writes repeated ints one by one; a packed writer sends one length-delimited run.
            raw = [value] if isinstance(value, int) else list(_varints(value))
            ints.extend(v - (1 << 64) if v >= 1 << 63 else v for v in raw)
        elif number == _ATTR_STRINGS and not isinstance(value, int):
            strings.append(bytes(value).decode("utf-8"))
    if name not in _LABEL_ATTRIBUTES:
        return None
    return strings if name.endswith(b"strings") else ints


def _fields(buffer: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) pairs of one protobuf message: varints as int, length-delimited as bytes."""
    position = 0
    while position < len(buffer):
        key, position = _varint(buffer, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(buffer, position)
            yield number, value
        elif wire == 2:
            size, position = _varint(buffer, position)
            if position + size > len(buffer):
                raise ValueError(f"field {number} runs past the end of its message")
            yield number, buffer[position : position + size]
            position += size
        elif wire in (1, 5):
            position += 8 if wire == 1 else 4
        else:
            raise ValueError(f"field {number} has protobuf wire type {wire}, which ONNX never writes")


def _varints(buffer: memoryview) -> Iterator[int]:
    position = 0
    while position < len(buffer):
        value, position = _varint(buffer, position)
        yield value


def _varint(buffer: memoryview, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7
