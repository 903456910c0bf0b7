"""The `python` flavor: your own class, for models no framework flavor covers.

The class is named at registration as `package.module:Class` (importable where the
model is loaded) or `file.py:Class` (a file inside the artifact folder). It needs:

- `load(path)`, a classmethod or staticmethod returning a ready instance;
- `predict(columns, **params)`, vectorized: `columns` maps each feature name to a numpy
  array with one entry per row; it returns one array (for a one-output signature) or a
  dict of output name → array. `params` holds `k` when the caller asks for top-k.
- optionally `signature`, a `Signature` or its dict form, so registration needs no other.

Loading this flavor imports and runs the class's code: trust it as you trust your code.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from foretell.adapters.base import FlavorOptions
from foretell.core.frame import Array, Frame
from foretell.core.predictor import PredictOptions
from foretell.core.schema import Signature
from foretell.errors import InvalidSignature, ModelLoadError, UnsupportedModel


class PythonModel:
    def __init__(self, instance: Any, signature: Signature) -> None:
        self._instance = instance
        self._single = signature.outputs[0].name if len(signature.outputs) == 1 else None

    def predict(self, frame: Frame, options: PredictOptions) -> Mapping[str, Array]:
        params = {} if options.k is None else {"k": options.k}
        result = self._instance.predict(frame, **params)
        if isinstance(result, Mapping):
            return result
        if self._single is None:
            raise TypeError("predict returned one array but the signature names several outputs; return a dict")
        return {self._single: np.asarray(result)}


class PythonFlavor:
    name = "python"

    def matches(self, path: Path) -> bool:
        return False  # a user class is always named explicitly

    def describe(self, path: Path, options: FlavorOptions) -> Signature | None:
        declared = getattr(resolve_class(path, options), "signature", None)
        if declared is None or isinstance(declared, Signature):
            return declared
        if isinstance(declared, Mapping):
            return Signature.from_dict(declared)
        raise InvalidSignature(
            f"the class's signature attribute is a {type(declared).__name__}, not a Signature or dict"
        )

    def load(self, path: Path, signature: Signature, options: FlavorOptions) -> PythonModel:
        cls = resolve_class(path, options)
        try:
            instance = cls.load(path)
        except Exception as exc:
            raise ModelLoadError(f"{cls.__name__}.load({path.name!r}) failed: {type(exc).__name__}: {exc}") from exc
        return PythonModel(instance, signature)

    def framework_versions(self) -> dict[str, str]:
        return {"numpy": np.__version__}


def resolve_class(path: Path, options: FlavorOptions) -> Any:
    """The user class named by `options["class"]`: `package.module:Class` or `file.py:Class`."""
    reference = options.get("class")
    if not isinstance(reference, str) or reference.count(":") != 1:
        raise UnsupportedModel(
            "the python flavor needs the model class as 'package.module:Class' or 'file.py:Class' "
            "(CLI: --python-class; API: flavor_options={'class': ...})"
        )
    module_ref, class_name = reference.split(":")
    if module_ref.endswith(".py"):
        module = _module_from_file(path, module_ref)
    else:
        try:
            module = importlib.import_module(module_ref)
        except ImportError as exc:
            raise UnsupportedModel(f"cannot import {module_ref!r} for the python flavor: {exc}") from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise UnsupportedModel(f"{module_ref!r} has no class {class_name!r}")
    for needed in ("load", "predict"):
        if not callable(getattr(cls, needed, None)):
            raise UnsupportedModel(f"{reference}: a python-flavor class needs a {needed}() method")
    return cls


def _module_from_file(path: Path, relative: str) -> Any:
    folder = path if path.is_dir() else path.parent
    source = (folder / relative).resolve()
    if not source.is_relative_to(folder.resolve()) or not source.is_file():
        raise UnsupportedModel(f"{relative!r} is not a file inside the artifact folder {folder}")
    # One module name per file content: two versions of a model with different code never collide.
    name = "foretell_user_" + hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, source)
    if spec is None or spec.loader is None:
        raise UnsupportedModel(f"cannot import {source}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ModelLoadError(f"importing {relative} failed: {type(exc).__name__}: {exc}") from exc
    return module
