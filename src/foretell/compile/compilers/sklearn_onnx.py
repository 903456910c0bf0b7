"""scikit-learn estimators and pipelines as ONNX graphs, run by ONNX Runtime.

A scaler and a logistic regression are a few multiplications per row; scikit-learn
spends hundreds of microseconds around them validating, wrapping and dispatching.
skl2onnx writes the same arithmetic as an ONNX graph, and ONNX Runtime runs it on one
thread in about ten.

The graph takes float64 (`DoubleTensorType`) so the arithmetic matches scikit-learn's
to the last bits or nearly; converters that only exist for float32 get a float32
graph, and the parity proof decides whether that is close enough. Classifiers are
converted without ZipMap: a probability matrix, not a list of dicts per row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from foretell.adapters.base import import_framework
from foretell.adapters.onnx import OnnxFlavor, OnnxModel
from foretell.compile.compilers.base import Built, describe_exception, package_version
from foretell.core.schema import Signature
from foretell.errors import NotCompilable

__all__ = ["build_onnx", "load_onnx"]

GRAPH = "model.onnx"


def build_onnx(estimator: Any, signature: Signature, folder: Path) -> Built:
    """A fitted scikit-learn estimator or pipeline as `folder/model.onnx`."""
    skl2onnx = import_framework("compile", "skl2onnx", "compile")
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    width = len(signature.inputs)
    from sklearn.base import is_classifier

    # ZipMap is an option of classifiers only; skl2onnx refuses it for a regressor.
    options = {"zipmap": False} if is_classifier(estimator) else None
    problems: list[str] = []
    for tensor_type in (DoubleTensorType, FloatTensorType):
        try:
            graph = skl2onnx.convert_sklearn(
                estimator, initial_types=[("X", tensor_type([None, width]))], options=options
            )
            break
        except Exception as exc:
            problems.append(describe_exception(exc))
    else:
        raise NotCompilable(f"skl2onnx cannot convert this {type(estimator).__name__}: {problems[-1]}")
    (folder / GRAPH).write_bytes(graph.SerializeToString())
    return Built(
        "onnx",
        GRAPH,
        toolchain={
            "skl2onnx": package_version("skl2onnx"),
            "onnx": package_version("onnx"),
            "onnxruntime": package_version("onnxruntime"),
        },
    )


def load_onnx(graph: Path, signature: Signature) -> OnnxModel:
    """The graph through the onnx flavor itself, with the original's signature (one thread per session)."""
    flavor: Any = OnnxFlavor()
    loaded: OnnxModel = flavor.load(graph, signature, {"num_threads": 1})
    return loaded
