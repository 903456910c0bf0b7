"""From a registry record to a `Model`, and the picklable `ModelSource` that batch and serving receive.

The registry stores and finds versions; it never opens an artifact. Loading one is:

1. the artifact's sha256 checked against the record before the file is opened (loading a
   pickle runs code: a swapped file must never get that far);
2. the variant: the compiled predictor when the version has one that passed its parity
   proof and may be used on this machine (foretell.compile.verification rebuilds it first
   when this machine needs its own build), unless `original` is asked for;
3. the flavor's own loader otherwise (foretell.adapters), or when the compiled one fails
   to load under `auto`: the compiled path never costs a model that loads without it.

Profiling goes through here as well (`profile_version`): a version's reference profile
describes its outputs too, so the model is loaded to score the profiled rows.

A `ModelSource` is a version pinned at the moment it was resolved, plus where to load it
from and which predictor to use: small, immutable and picklable, so a batch job hands it
to worker processes and Ray actors, and every one of them loads the same version the
same way. Compiling goes through here too, since its proof needs the original loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foretell.adapters import get_flavor
from foretell.compile import DEFAULT_ROWS, DEFAULT_TOLERANCE, CompileReport, compile_version, load_build
from foretell.compile.builds import stored_validation
from foretell.compile.validation_sample import validation_frame, validation_rows
from foretell.core.frame import Frame
from foretell.core.model import Model, ModelInfo, PredictorChoice, check_predictor_choice
from foretell.core.predictor import Predictor
from foretell.errors import ForetellError, InvalidInput, UnsupportedModel
from foretell.profiles.reference import ProfileSource, ReferenceProfile, build_profile
from foretell.registry.base import Registry
from foretell.registry.profiles import ProfileStore
from foretell.registry.sqlite import SqliteRegistry

__all__ = [
    "ModelSource",
    "compile_model",
    "compile_registered",
    "load_model",
    "load_original",
    "load_version",
    "model_source",
    "profile_registered",
    "profile_version",
]

log = logging.getLogger("foretell.compile")

#: Rows a profile is computed from at most: its percentiles and shares are as good at 100k rows as at 10M.
PROFILE_ROWS = 100_000


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


def profile_version(registry: Registry, info: ModelInfo, *, sample: object | None = None) -> ReferenceProfile:
    """The reference profile of `info`'s inputs and outputs (not stored; see `profile_registered`).

    From `sample` (a Parquet, CSV or JSON Lines path, a DataFrame or an Arrow table): its rows
    the signature accepts, refused ones skipped. Without one, from the rows the version's
    compile proved on (kept with its build, else generated as the compile would): a poorer
    reference, mostly generated values, so the profile says `source: validation`.
    """
    source: ProfileSource
    if sample is not None:
        frame, source = _sample_frame(info, sample), "sample"
    else:
        frame, source = _validation_frame(registry, info), "validation"
    if frame.n_rows == 0:
        raise InvalidInput(f"no row of the sample fits {info.uri}'s signature: nothing to profile")
    if frame.n_rows > PROFILE_ROWS:  # evenly spread rows, so a sorted file is still seen whole
        frame = frame.take(np.linspace(0, frame.n_rows - 1, PROFILE_ROWS).astype(np.intp))
    outputs = load_version(registry, info).predictor.predict(frame).columns
    return build_profile(info.name, info.version, info.signature, frame, outputs, source=source)


def profile_registered(registry: Registry, info: ModelInfo, *, sample: object | None = None) -> ReferenceProfile | None:
    """Profile a version just registered and store it; a failure is logged, never raised (it stays registered)."""
    try:
        profile = profile_version(registry, info, sample=sample)
        ProfileStore(registry.home).save(profile)
    except Exception as exc:  # a profile is for monitoring later: it must never cost the registration
        log.warning("%s was registered without a reference profile: %s", info.uri, exc)
        return None
    return profile


def _sample_frame(info: ModelInfo, sample: object) -> Frame:
    from foretell import formats

    rows = formats.read_file(Path(sample)) if isinstance(sample, str | Path) else sample
    return info.signature.coerce(rows, extra="ignore").frame


def _validation_frame(registry: Registry, info: ModelInfo) -> Frame:
    record = registry.compiled.record(info)
    width = len(info.signature.inputs)
    stored = stored_validation(registry.compiled.folder_of(record), width) if record is not None else None
    if stored is None:
        try:
            stored = validation_rows(info, None, DEFAULT_ROWS, {})
        except ValueError as exc:
            raise InvalidInput(
                f"{info.uri} has no validation rows to profile ({exc}); give real rows: "
                f"foretell models profile {info.uri} --sample FILE"
            ) from exc
    return validation_frame(info, stored)
