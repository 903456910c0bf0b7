"""From a registry record to a `Model`, and the picklable `ModelSource` that batch and serving receive.

The registry stores and finds versions; it never opens an artifact. Loading one is:

1. the artifact's sha256 checked against the record before the file is opened (loading a
   pickle runs code: a swapped file must never get that far);
2. the variant: the compiled predictor when the version has one that passed its parity
   proof and may be used on this machine (foretell.compile.verification rebuilds it first
   when this machine needs its own build), unless `original` is asked for;
3. the flavor's own loader otherwise (foretell.adapters), or when the compiled one fails
   to load under `auto`: the compiled path never costs a model that loads without it.

A `ModelSource` is a version pinned at the moment it was resolved, plus where to load it
from and which predictor to use: small, immutable and picklable, so a batch job hands it
to worker processes and Ray actors, and every one of them loads the same version the
same way. Compiling goes through here too, since its proof needs the original loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from foretell.adapters import get_flavor
from foretell.compile import DEFAULT_ROWS, DEFAULT_TOLERANCE, CompileReport, compile_version, load_build
from foretell.core.model import Model, ModelInfo, PredictorChoice, check_predictor_choice
from foretell.core.predictor import Predictor
from foretell.errors import ForetellError, UnsupportedModel
from foretell.registry.base import Registry
from foretell.registry.sqlite import SqliteRegistry

__all__ = [
    "ModelSource",
    "compile_model",
    "compile_registered",
    "load_model",
    "load_original",
    "load_version",
    "model_source",
]

log = logging.getLogger("foretell.compile")


@dataclass(frozen=True)
class ModelSource:
    """A resolved model version and what loading it needs; picklable, for worker processes and actors."""

    info: ModelInfo
    """The version as recorded when it was resolved (pinned: an alias moved later changes nothing)."""
    home: Path
    """The registry's home (FORETELL_HOME), absolute: a worker may run in another directory."""
    predictor: PredictorChoice = "auto"

    @property
    def uri(self) -> str:
        """The pinned version's URI (`models:/churn/3`)."""
        return self.info.uri

    def load(self) -> Model:
        """Verify and load the pinned version in this process (see the module docstring)."""
        return load_version(SqliteRegistry(self.home), self.info, self.predictor)


def model_source(registry: Registry, uri: str, *, predictor: PredictorChoice = "auto") -> ModelSource:
    """The version `uri` names now (`churn@production`, `models:/churn/3`), pinned, with the predictor to load."""
    choice = check_predictor_choice(predictor)
    return ModelSource(registry.get(uri), Path(registry.home).absolute(), choice)


def load_model(registry: Registry, uri: str, *, predictor: PredictorChoice = "auto") -> Model:
    """Resolve, verify, and load: the compiled predictor when it passed its parity proof, else the flavor's.

    `predictor="original"` always loads the flavor's own (for debugging a difference);
    `"compiled"` insists on the compiled one and says why when there is none.
    """
    choice = check_predictor_choice(predictor)
    return load_version(registry, registry.get(uri), choice)


def load_version(registry: Registry, info: ModelInfo, predictor: PredictorChoice = "auto") -> Model:
    """Verify and load the version `info` records (one read from `registry`), as `load_model` does."""
    choice = check_predictor_choice(predictor)
    path = registry.artifact_path(info, verify=True)
    if choice != "original":
        try:
            found = load_build(registry.compiled, info, path, lambda: load_original(info, path))
        except Exception as exc:  # the compiled path must never cost a model that loads without it
            if choice == "compiled":
                raise
            log.warning("%s: the compiled predictor could not be loaded, using the original: %s", info.uri, exc)
            found = f"{type(exc).__name__}: {exc}"
        if not isinstance(found, str):
            return Model(info, Predictor(found.loaded, info.signature, name=info.name), found.compiler)
        if choice == "compiled":
            raise UnsupportedModel(f"{info.uri} has no compiled predictor to use: {found}")
    return load_original(info, path)


def load_original(info: ModelInfo, artifact: Path) -> Model:
    """The flavor's own predictor for `artifact` (already verified by the caller)."""
    loaded = get_flavor(info.flavor).load(artifact, info.signature, info.flavor_options)
    return Model(info, Predictor(loaded, info.signature, name=info.name))


def compile_model(
    registry: Registry,
    uri: str,
    *,
    sample: object | None = None,
    tolerance: float | None = None,
    rows: int | None = None,
) -> CompileReport:
    """Compile a version, prove it against the original on a validation sample, and record the outcome."""
    info = registry.get(uri)
    path = registry.artifact_path(info, verify=True)
    return compile_version(
        registry.compiled,
        info,
        path,
        load_original(info, path),
        sample=sample,
        tolerance=DEFAULT_TOLERANCE if tolerance is None else tolerance,
        rows=DEFAULT_ROWS if rows is None else rows,
    )


def compile_registered(registry: Registry, info: ModelInfo, *, sample: object | None = None) -> ModelInfo:
    """Compile a version just registered, and its record after. It stays registered either way: one that
    does not compile keeps its original predictor, and its record (`ModelInfo.compiled`) says why."""
    try:
        compile_model(registry, info.uri, sample=sample)
    except ForetellError as exc:
        log.warning("%s was registered but not compiled: %s", info.uri, exc)
    return registry.get(info.uri)
