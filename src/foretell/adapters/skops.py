"""scikit-learn estimators saved with skops (`.skops`): loaded without running code from the file.

skops rebuilds an estimator from a description of its objects and refuses any type it is not
told to trust: its defaults (numpy, the standard library, most of scikit-learn) and the types
listed when the model was registered (`--trust TYPE`, recorded as the flavor option `trusted`).
That list is checked again at every load, so a file holding any other type is refused, with
the types named, and never turned into objects.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

from foretell.adapters.base import FlavorOptions, import_framework
from foretell.adapters.sklearn import SklearnFlavor, predicting
from foretell.errors import ModelLoadError

__all__ = ["SkopsFlavor", "read_estimator", "trusted_types"]

SUFFIXES = (".skops",)


def trusted_types(options: FlavorOptions) -> list[str]:
    """The types beyond skops' defaults that the user trusted at registration."""
    trusted = options.get("trusted", [])
    if not isinstance(trusted, list) or not all(isinstance(name, str) for name in trusted):
        raise ModelLoadError(f"the skops flavor option 'trusted' is a list of type names, got {trusted!r}")
    return trusted


class SkopsFlavor(SklearnFlavor):
    name = "skops"

    def matches(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() in SUFFIXES

    def framework_versions(self) -> dict[str, str]:
        sklearn = import_framework(self.name, "sklearn", "skops")
        import_framework(self.name, "skops.io", "skops")
        return {"scikit-learn": sklearn.__version__, "skops": metadata.version("skops")}

    def _read(self, path: Path, options: FlavorOptions) -> Any:
        return read_estimator(path, options)


def read_estimator(path: Path, options: FlavorOptions) -> Any:
    """The estimator in the skops file at `path`, built from its own types and the ones `options` trusts."""
    sio = import_framework(SkopsFlavor.name, "skops.io", "skops")
    trusted = trusted_types(options)
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise ModelLoadError(f"could not read {path.name} with skops: {type(exc).__name__}: {exc}") from exc
    refused = sorted(set(untrusted) - set(trusted))
    if refused:
        listed = " ".join(f"--trust {name}" for name in refused)
        raise ModelLoadError(
            f"{path.name} holds types skops does not trust by default: {', '.join(refused)}; refusing to load "
            f"it. If you trust them (they run when the model loads), register it with {listed}"
        )
    try:
        estimator = sio.load(path, trusted=untrusted)
    except Exception as exc:
        raise ModelLoadError(f"could not load {path.name} with skops: {type(exc).__name__}: {exc}") from exc
    return predicting(estimator, path)
