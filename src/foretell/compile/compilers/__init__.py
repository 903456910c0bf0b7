"""Compiled forms of registered models: native tree code (treelite + tl2cgen) and ONNX graphs.

`build` turns an artifact into files in a folder, or raises `NotCompilable` saying why;
`load` turns those files back into a `LoadedModel` that answers exactly as the flavor's
own would (compilation.py proves that before one is ever used). Which compiler fits:

- tree ensembles (scikit-learn gradient boosting, histogram gradient boosting, random
  forests, extra trees; LightGBM; XGBoost): treelite reads the trees, tl2cgen writes
  them out as C and the machine's C compiler builds a shared library;
- other scikit-learn estimators and pipelines: skl2onnx converts them to an ONNX graph,
  run by ONNX Runtime on one thread;
- anything else (user code, a model already in ONNX) stays as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from foretell.adapters.skops import read_estimator
from foretell.compile.compilers.base import COMPILERS, Built, target_of
from foretell.compile.compilers.sklearn_onnx import build_onnx, load_onnx
from foretell.compile.compilers.trees import build_trees, load_trees, tree_source, tree_source_sklearn
from foretell.compile.validation_sample import matrix_reason
from foretell.core.predictor import LoadedModel
from foretell.core.schema import Signature
from foretell.errors import NotCompilable

__all__ = ["COMPILERS", "Built", "build", "load", "target_of"]


def build(flavor: str, artifact: Path, signature: Signature, options: Mapping[str, Any], folder: Path) -> Built:
    """Compile `artifact` into `folder` with the first compiler that takes it."""
    if flavor == "onnx":
        raise NotCompilable("already an ONNX graph, run by ONNX Runtime on one thread: nothing to compile")
    if flavor == "python":
        raise NotCompilable("a python-flavor model is user code; only its own author can make it faster")
    reason = matrix_reason(signature)
    if reason is not None:
        raise NotCompilable(reason)
    outputs = set(signature.output_names)
    if outputs not in ({"score"}, {"label", "proba"}, {"score", "label", "proba"}):
        raise NotCompilable(f"outputs {sorted(outputs)}: compiled predictors give a score or class probabilities")
    if flavor in ("sklearn", "skops"):
        if flavor == "skops":  # only the types trusted at registration, as the flavor loads it
            estimator = read_estimator(artifact, options)
        else:
            import joblib

            estimator = joblib.load(artifact)  # once, for whichever compiler takes it
        source = tree_source_sklearn(estimator)
        if source is None:
            return build_onnx(estimator, signature, folder)
    else:
        source = tree_source(flavor, artifact)
        if source is None:
            raise NotCompilable(f"no compiler for this {flavor} model")
    model, inputs = source
    return build_trees(model, folder, signature.input_names, inputs)


def load(compiler: str, folder: Path, built: Built, signature: Signature) -> LoadedModel:
    """The compiled predictor in `folder`, built by `compiler` (files already verified by the caller)."""
    if compiler == "treelite":
        return load_trees(folder / built.main_file, signature, built.settings)
    if compiler == "onnx":
        return load_onnx(folder / built.main_file, signature)
    raise NotCompilable(f"unknown compiler {compiler!r}; known: {', '.join(COMPILERS)}")
