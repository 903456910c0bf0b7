"""The contract every flavor meets: recognise an artifact, describe it, load it.

A flavor imports its framework inside its methods, never at module import, so that
`import foretell` works without LightGBM and a missing framework becomes `MissingExtra`
naming the extra to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from foretell.core.predictor import LoadedModel
from foretell.core.schema import Signature
from foretell.errors import MissingExtra

__all__ = ["Flavor", "FlavorOptions", "import_framework"]

#: Flavor-specific settings recorded at registration (e.g. the python flavor's class path).
FlavorOptions = Mapping[str, Any]


class Flavor(Protocol):
    """One framework's way of loading and describing a model artifact."""

    name: str
    """Short name recorded in the registry: `sklearn`, `onnx`, `lightgbm`, `xgboost`, `python`."""

    def matches(self, path: Path) -> bool:
        """True when `path` looks like this flavor's artifact (by suffix or contents); no framework import."""
        ...

    def describe(self, path: Path, options: FlavorOptions) -> Signature | None:
        """The signature read from the artifact itself, or None when it does not say enough."""
        ...

    def load(self, path: Path, signature: Signature, options: FlavorOptions) -> LoadedModel:
        """The model, ready for `Predictor`; outputs named as in `signature.outputs`."""
        ...

    def framework_versions(self) -> dict[str, str]:
        """Versions of the libraries this flavor loads with, recorded at registration."""
        ...


def import_framework(flavor: str, module: str, extra: str) -> ModuleType:
    """Import a flavor's framework, or say which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is not None and module.split(".")[0] != exc.name.split(".")[0]:
            raise  # the framework is there but one of its own imports broke: show that, not a wrong hint
        raise MissingExtra(flavor, module, extra) from exc
