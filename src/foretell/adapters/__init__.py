"""One module per framework; this one picks the flavor for an artifact."""

from __future__ import annotations

from pathlib import Path

from foretell.adapters.base import Flavor, FlavorOptions, import_framework
from foretell.adapters.lightgbm import LightGBMFlavor
from foretell.adapters.onnx import OnnxFlavor
from foretell.adapters.python import PythonFlavor
from foretell.adapters.sklearn import SklearnFlavor
from foretell.adapters.skops import SkopsFlavor
from foretell.adapters.xgboost import XGBoostFlavor
from foretell.errors import UnsupportedModel

__all__ = ["FLAVORS", "Flavor", "FlavorOptions", "detect_flavor", "get_flavor", "import_framework"]

FLAVORS: dict[str, Flavor] = {
    flavor.name: flavor
    for flavor in (SklearnFlavor(), SkopsFlavor(), OnnxFlavor(), LightGBMFlavor(), XGBoostFlavor(), PythonFlavor())
}


def get_flavor(name: str) -> Flavor:
    try:
        return FLAVORS[name]
    except KeyError:
        raise UnsupportedModel(f"unknown flavor {name!r}; known: {', '.join(sorted(FLAVORS))}") from None


def detect_flavor(path: Path) -> Flavor:
    """The flavor whose artifacts look like `path`; ask for `flavor=` when none or several do."""
    found = [flavor for flavor in FLAVORS.values() if flavor.matches(path)]
    if len(found) == 1:
        return found[0]
    known = ", ".join(sorted(FLAVORS))
    if not found:
        raise UnsupportedModel(f"cannot tell the flavor of {path.name}; name it with flavor= (one of {known})")
    names = ", ".join(f.name for f in found)
    raise UnsupportedModel(f"{path.name} could be any of {names}; name the flavor with flavor=")
