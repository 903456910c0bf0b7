"""The registry's verbs: register, compile, load, and what is registered.

The registry, the models and the compilers are imported where they are used: every CLI
command imports `foretell.api`, and `foretell ledger show` or `foretell --version` never loads a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foretell.config import Settings

if TYPE_CHECKING:
    from foretell.compile import CompileReport
    from foretell.core.domain import Domain
    from foretell.core.model import Model, ModelInfo, PredictorChoice
    from foretell.core.schema import Signature
    from foretell.profiles import ReferenceProfile
    from foretell.registry import ModelSummary, SqliteRegistry


def get_registry(home: Path | str | None = None) -> SqliteRegistry:
    """The registry under `home`, or under `FORETELL_HOME` (default `./.foretell`)."""
    from foretell.registry import open_registry

    settings = Settings(home=Path(home)) if home is not None else Settings.from_env()
    return open_registry(settings.home)


def load(uri: str, *, predictor: PredictorChoice = "auto", home: Path | str | None = None) -> Model:
    """Load a registered model: `foretell.load("churn@production")`, `foretell.load("models:/churn/3")`.

    The artifact's sha256 is checked against the registry before the file is opened.
    The compiled predictor answers when the version has one that passed its parity proof
    (`Model.variant` says which); `predictor="original"` loads the framework's own.
    """
    from foretell.registry import loader

    return loader.load_model(get_registry(home), uri, predictor=predictor)


def compile_model(
    uri: str,
    *,
    sample: object | None = None,
    tolerance: float | None = None,
    rows: int | None = None,
    home: Path | str | None = None,
) -> CompileReport:
    """Compile a registered version to a native or ONNX predictor and prove it against the original.

    `sample` (a Parquet/CSV path, a DataFrame or an Arrow table) gives real rows for the
    proof; generated rows top it up to `rows` (at least 10,000). The compiled predictor
    is used from then on only if every output is within `tolerance` (default 1e-6) and
    every label is identical; the report says what was measured either way.
    """
    from foretell.registry import loader

    return loader.compile_model(get_registry(home), uri, sample=sample, tolerance=tolerance, rows=rows)


def register(
    name: str,
    path: Path | str,
    *,
    flavor: str | None = None,
    signature: Signature | Mapping[str, Any] | None = None,
    sample: object | None = None,
    flavor_options: Mapping[str, Any] | None = None,
    description: str = "",
    metadata: Mapping[str, Any] | None = None,
    aliases: Sequence[str] = (),
    compile: bool = True,
    domains: Mapping[str, Domain | str] | None = None,
    home: Path | str | None = None,
) -> ModelInfo:
    """Register a model file or folder as the next version of `name`.

    The flavor is detected from the file unless given; the signature is read from the
    model, from `sample` data, or taken as given (a `Signature` or its dict form). Then
    the version is compiled (see `compile_model`; `sample` also serves as real rows for
    the parity proof) unless `compile=False`; `ModelInfo.compiled` holds the outcome.
    `domains` (feature → a `Domain` or its text, `"0:120"`, `"basic,pro"`) bound those
    features' values: an input outside them is refused naming the bound.
    """
    from foretell.core.domain import Domain
    from foretell.core.schema import Signature
    from foretell.registry import loader

    if isinstance(signature, Mapping):
        signature = Signature.from_dict(signature)
    registry = get_registry(home)
    info = registry.register(
        name,
        Path(path),
        flavor=flavor,
        signature=signature,
        sample=sample,
        flavor_options=flavor_options,
        description=description,
        metadata=metadata,
        aliases=aliases,
        domains={n: Domain.from_dict(d) if isinstance(d, str) else d for n, d in (domains or {}).items()},
    )
    info = loader.compile_registered(registry, info, sample=sample) if compile else info
    loader.profile_registered(registry, info, sample=sample)  # logged, never raised: it stays registered
    return info


def propose_domains(
    name: str,
    path: Path | str,
    *,
    sample: object,
    flavor: str | None = None,
    signature: Signature | Mapping[str, Any] | None = None,
    flavor_options: Mapping[str, Any] | None = None,
) -> dict[str, Domain]:
    """The domains registering `path` with `sample` would propose: each numeric feature's observed [min, max].

    Nothing is registered; pass what a person confirmed to `register(..., domains=...)`.
    """
    from foretell.registry.domains import propose_domains as proposed

    return proposed(name, Path(path), sample=sample, flavor=flavor, signature=signature, flavor_options=flavor_options)


def profile_model(uri: str, *, sample: object | None = None, home: Path | str | None = None) -> ReferenceProfile:
    """Compute a version's reference profile again and store it (what drift is measured against).

    From `sample` (a Parquet/CSV/JSON Lines path, a DataFrame or an Arrow table) when given,
    else from the rows its compile proved on; registration does this on its own.
    """
    from foretell.registry import loader
    from foretell.registry.profiles import ProfileStore

    registry = get_registry(home)
    profile = loader.profile_version(registry, registry.get(uri), sample=sample)
    ProfileStore(registry.home).save(profile)
    return profile


def stored_profile(uri: str, *, home: Path | str | None = None) -> ReferenceProfile | None:
    """The reference profile stored for a version, or None (registered before profiles, or profiling failed)."""
    from foretell.registry.profiles import ProfileStore

    registry = get_registry(home)
    info = registry.get(uri)
    return ProfileStore(registry.home).load(info.name, info.version)


def show(uri: str, *, home: Path | str | None = None) -> ModelInfo:
    return get_registry(home).get(uri)


def list_models(*, home: Path | str | None = None) -> list[ModelSummary]:
    return get_registry(home).list_models()


def list_versions(name: str, *, home: Path | str | None = None) -> list[ModelInfo]:
    return get_registry(home).list_versions(name)


def set_alias(name: str, alias: str, version: int | None, *, home: Path | str | None = None) -> None:
    """Point `alias` at `version`; `version=None` deletes the alias."""
    registry = get_registry(home)
    if version is None:
        registry.delete_alias(name, alias)
    else:
        registry.set_alias(name, alias, version)


def delete_version(name: str, version: int, *, home: Path | str | None = None) -> None:
    get_registry(home).delete_version(name, version)


def production_uris(*, home: Path | str | None = None) -> list[str]:
    """Every registered model that has a `production` alias, as `name@production`."""
    return [f"{m.name}@production" for m in list_models(home=home) if "production" in m.aliases]
