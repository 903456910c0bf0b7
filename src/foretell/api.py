"""The facade the CLI (and most users) call: load, register, predict, and the demo.

Everything here reads settings at the edge (`FORETELL_HOME`) and hands plain objects
down; the layers below never look at the environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from foretell.config import Settings
from foretell.errors import InvalidInput

# The registry, the models and the compilers are imported where they are used: every CLI
# command imports this module, and `foretell ledger show` or `foretell --version` never loads a model.
if TYPE_CHECKING:
    from datetime import datetime

    from foretell.advisor import Advice, Workload
    from foretell.batch import BatchResult
    from foretell.batch.job import Progress
    from foretell.batch.scheduler import Scheduler
    from foretell.batch.schedules import ScheduleBook
    from foretell.compile import CompileReport
    from foretell.core.model import Model, ModelInfo, PredictorChoice
    from foretell.core.schema import Signature
    from foretell.demo import DemoSummary
    from foretell.ledger.labels import LabelLoad
    from foretell.registry import ModelSummary, SqliteRegistry
    from foretell.serving.config import ServeConfig
    from foretell.store.entities import Entity, EntityTable

__all__ = [
    "InputFormat",
    "advice_report",
    "advise",
    "advise_seconds",
    "advise_workload",
    "batch_job",
    "batch_jobs",
    "compile_model",
    "create_server_app",
    "delete_version",
    "demo_init",
    "entity_tables",
    "get_entity",
    "get_registry",
    "ledger_export",
    "ledger_history",
    "ledger_location",
    "ledger_stats",
    "list_models",
    "list_versions",
    "load",
    "load_entities",
    "load_labels",
    "production_uris",
    "read_input",
    "register",
    "resume_batch",
    "run_batch",
    "schedule_book",
    "scheduler",
    "serve",
    "serve_config",
    "set_alias",
    "show",
]

InputFormat = Literal["auto", "json", "jsonl", "csv", "parquet"]


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
    home: Path | str | None = None,
) -> ModelInfo:
    """Register a model file or folder as the next version of `name`.

    The flavor is detected from the file unless given; the signature is read from the
    model, from `sample` data, or taken as given (a `Signature` or its dict form). Then
    the version is compiled (see `compile_model`; `sample` also serves as real rows for
    the parity proof) unless `compile=False`; `ModelInfo.compiled` holds the outcome.
    """
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
    )
    return loader.compile_registered(registry, info, sample=sample) if compile else info


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


def demo_init(
    *,
    customers: int = 20_000,
    users: int = 5_000,
    movies: int = 1_500,
    seed: int = 7,
    home: Path | str | None = None,
) -> DemoSummary:
    """Generate the demo data under `<home>/demo/`, train both demo models, register them as `@production`."""
    from foretell import demo

    registry = get_registry(home)
    return demo.init(registry, registry.home / "demo", customers=customers, users=users, movies=movies, seed=seed)


def _home(home: Path | str | None) -> Path:
    return Path(home) if home is not None else Settings.from_env().home


def run_batch(
    model_uri: str,
    input: str | Path,
    output: str | Path,
    *,
    home: Path | str | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> BatchResult:
    """Score a whole input into a published, exactly-once output (see `foretell.batch.run` for the options).

    With `to_store=True` the predictions go to the store `store_url` names, else to FORETELL_STORE_URL's,
    else to the SQLite store in `home`.
    """

    from foretell import batch

    if options.get("to_store") and options.get("store_url") is None:
        options["store_url"] = _store_url()
    if options.get("ledger") is None:  # indexed in the ledger queries read, unless told otherwise
        options["ledger"] = os.environ.get(LEDGER_ENV) or True

    return batch.run(model_uri, input, output, home=_home(home), progress=progress, **options)


def resume_batch(
    job_id: str, *, home: Path | str | None = None, progress: Progress | None = None, ray_address: str | None = None
) -> BatchResult:
    """Finish an interrupted or killed batch job: committed chunks are kept, the rest are scored.

    A job on Ray resumes on its own cluster, or on `ray_address` when given.
    """
    from foretell import batch

    return batch.resume(job_id, home=_home(home), progress=progress, ray_address=ray_address)


def batch_jobs(*, home: Path | str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The most recent batch jobs, newest first."""
    from foretell.batch.history import JobHistory

    return JobHistory(_home(home)).list(limit)


def batch_job(job_id: str, *, home: Path | str | None = None) -> dict[str, Any]:
    from foretell.batch.history import JobHistory

    return JobHistory(_home(home)).get(job_id)


def schedule_book(*, home: Path | str | None = None) -> ScheduleBook:
    """The schedules under `home` (`schedules.db`): add, list, remove, and their runs."""
    from foretell.batch.schedules import ScheduleBook

    return ScheduleBook(_home(home))


def scheduler(*, home: Path | str | None = None, **options: Any) -> Scheduler:
    """The long-running process that starts due schedules (see `foretell.batch.scheduler.Scheduler`)."""
    from foretell.batch.scheduler import Scheduler

    return Scheduler(_home(home), **options)


STORE_URL_ENV = "FORETELL_STORE_URL"
API_KEY_ENV = "FORETELL_API_KEY"
LEDGER_ENV = "FORETELL_LEDGER"
"""Where the prediction ledger is (a folder or an fsspec URL), when not FORETELL_HOME/ledger."""


def production_uris(*, home: Path | str | None = None) -> list[str]:
    """Every registered model that has a `production` alias, as `name@production`."""
    return [f"{m.name}@production" for m in list_models(home=home) if "production" in m.aliases]


def create_server_app(
    uris: Sequence[str] = (),
    *,
    home: Path | str | None = None,
    config: ServeConfig | Path | str | None = None,
    **settings: Any,
) -> Any:
    """The ASGI app serving `uris` (default: the config's models, else every model with a `production` alias).

    `config` is a `ServeConfig` or a TOML file (docs/serving.md); `settings` override it
    (`max_batch_size=`, `max_delay_ms=`, `max_queue=`, `reload_seconds=`, `max_body_bytes=`,
    `api_key=`, `overload_status=`), and a `[batching.NAME]` table in the file overrides both.
    """
    from foretell.http.server import build_app

    return build_app(_home(home), _served(config, uris, settings, home))


def serve(
    uris: Sequence[str] = (),
    *,
    home: Path | str | None = None,
    config: ServeConfig | Path | str | None = None,
    log_level: str = "warning",
    engine: str = "local",
    replicas: int | None = None,
    autoscale: str | None = None,
    ray_address: str | None = None,
    ray_ingress: str = "direct",
    **settings: Any,
) -> None:
    """Serve models over HTTP (Open Inference Protocol and MLflow scoring) until SIGTERM or Ctrl-C.

    Settings as for `create_server_app`, plus `host=`, `port=`, `workers=` and `access_log=`.
    After a SIGTERM or Ctrl-C, in-flight requests finish (up to 30 s) and `serve` returns.
    With `engine="ray"` the same app runs as a Ray Serve application (`replicas=N` or
    `autoscale="MIN:MAX"`, on the cluster at `ray_address` or one started here); `ray_ingress="direct"`
    (where Ray has it) lets each replica answer on its own port, `"proxy"` only through Ray Serve's proxy.
    """
    from foretell.http.server import RayPlacement, run_server

    if engine not in ("local", "ray"):
        raise InvalidInput(f"engine must be local or ray; got {engine!r}")
    ray = RayPlacement(replicas, autoscale, ray_address, ray_ingress) if engine == "ray" else None
    run_server(_home(home), _served(config, uris, settings, home), log_level=log_level, ray=ray)


def _served(
    config: ServeConfig | Path | str | None,
    uris: Sequence[str],
    settings: Mapping[str, Any],
    home: Path | str | None,
) -> ServeConfig:
    """The settings a server runs with: the config, the arguments, then the environment for what is still unset."""
    import os

    resolved = serve_config(config, uris, settings)
    return resolved.with_flags(
        models=None if resolved.models else production_uris(home=home),
        api_key=resolved.api_key or os.environ.get(API_KEY_ENV) or None,
        store_url=resolved.store_url or _store_url(),
        ledger_location=resolved.ledger.location or os.environ.get(LEDGER_ENV) or None,
    )


def _store_url() -> str | None:
    """Where predictions and entity tables live: FORETELL_STORE_URL (e.g. redis://host:6379/0), else SQLite in home."""
    import os

    return os.environ.get(STORE_URL_ENV) or None


def serve_config(
    config: ServeConfig | Path | str | None, uris: Sequence[str] = (), settings: Mapping[str, Any] | None = None
) -> ServeConfig:
    """A config file (or `ServeConfig`) with the given URIs and settings on top; None settings are "not given"."""
    from foretell.serving.config import settings_over

    return settings_over(config, uris, settings or {})


def load_entities(
    name: str,
    source: str | Path,
    *,
    key: str,
    models: Sequence[str] = (),
    interactions: tuple[str, str, str] | None = None,
    home: Path | str | None = None,
) -> EntityTable:
    """Load (or replace) entity table `name` from a Parquet/CSV/JSON file, keyed by column `key`.

    `models` are the models whose live predictions read it. `interactions=(column, item, value)`
    makes it an interactions table: each key's `item` → `value` rows kept as the map `column`
    (for example `("ratings", "movie_id", "rating")`).
    """
    from datetime import UTC, datetime

    import pyarrow as pa

    from foretell.store import open_entity_store
    from foretell.store.entities import Interactions

    rows = read_input(source)
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows)
    store = open_entity_store(_home(home), _store_url())
    at = datetime.now(UTC).isoformat()
    if interactions is None:
        return store.load_features(name, key, table, models=models, at=at)
    return store.load_interactions(name, key, table, Interactions(*interactions), models=models, at=at)


def entity_tables(*, home: Path | str | None = None) -> list[EntityTable]:
    from foretell.store import open_entity_store

    return open_entity_store(_home(home), _store_url()).tables()


def get_entity(name: str, key: str, *, home: Path | str | None = None) -> Entity:
    """One entity's features now; `NotFound` if the table has no row for `key`."""
    from foretell.errors import NotFound
    from foretell.store import open_entity_store

    found = open_entity_store(_home(home), _store_url()).get(name, str(key))
    if found is None:
        raise NotFound(f"entity table {name!r} has no row for key {key!r}")
    return found


def advise_workload(settings: Mapping[str, Any], *, file: str | Path | None = None) -> Workload:
    """The workload `foretell advise` weighs: a `preset`, a TOML `file`, and `settings` on top (None: not given)."""
    from foretell.advisor import load_workload, workload_from

    merged: dict[str, Any] = load_workload(file).to_dict() if file is not None else {}
    merged.update({k: v for k, v in settings.items() if v is not None})
    return workload_from(merged, Path(file).stem if file is not None else "custom")


def advice_report(advice: Advice) -> str:
    """`advice` as one self-contained HTML page with plots (no external assets)."""
    from foretell.advisor.report import render_report

    return render_report(advice)


def advise_seconds(*, quick: bool = False) -> float:
    """About how long `advise` measures for."""
    from foretell.advisor.measure import MeasurePlan

    return (MeasurePlan.quick() if quick else MeasurePlan.full()).estimated_seconds


def advise(
    uri: str,
    workload: Workload,
    *,
    quick: bool = False,
    sample: str | Path | None = None,
    home: Path | str | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> Advice:
    """Measure `uri` on this machine through the real batch, serving and store paths, then price `workload`.

    `quick` keeps the measurements under about ten seconds; `sample` is a file of real rows
    (otherwise rows are generated from the signature). Nothing in `home` is changed.
    """
    import pyarrow as pa

    from foretell.advisor import advise as price
    from foretell.advisor.measure import MeasurePlan, measure
    from foretell.batch import run

    rows = None
    if sample is not None:
        found = read_input(sample)
        rows = found if isinstance(found, pa.Table) else pa.Table.from_pylist(found)
    plan = MeasurePlan.quick() if quick else MeasurePlan.full()

    def score_file(model_uri: str, rows_file: Path, output: Path, scratch_home: Path, id_column: str) -> object:
        return run(model_uri, rows_file, output, home=scratch_home, id_column=id_column)

    measured = measure(uri, home=_home(home), plan=plan, score_file=score_file, sample=rows, progress=progress)
    return price(workload, measured)


def read_input(source: str | Path, fmt: InputFormat = "auto") -> Any:
    """Rows from a Parquet / CSV / JSON / JSON Lines file, or `-` for stdin (see `foretell.formats`).

    Parquet and CSV come back as a pyarrow Table, JSON as a list of dicts: both are model inputs.
    A `.json` file is one document, an object (one row) or a list of objects; `.jsonl` is JSON Lines.
    """
    from foretell import formats

    if str(source) == "-":
        data = sys.stdin.buffer.read()
        return formats.read_rows(data, formats.sniff(data) if fmt == "auto" else fmt, "standard input")
    return formats.read_file(Path(source), None if fmt == "auto" else fmt)


# -- the prediction ledger ---------------------------------------------------------------------------


def ledger_location(ledger: str | Path | None = None, *, home: Path | str | None = None) -> str:
    """Where the ledger is: `ledger` if given, else FORETELL_LEDGER (a folder or fsspec URL), else `<home>/ledger`."""
    return str(ledger) if ledger else os.environ.get(LEDGER_ENV) or str(_home(home) / "ledger")


def ledger_history(
    model: str,
    *,
    key: str | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    source: str | None = None,
    version: int | None = None,
    limit: int = 100,
    ledger: str | Path | None = None,
    home: Path | str | None = None,
) -> list[dict[str, Any]]:
    """`model`'s recorded predictions, newest first: live, lookups, events and batch jobs alike.

    `since`/`until` are a datetime, a duration back from now (`24h`, `7d`) or an ISO date/time.
    """
    from foretell.ledger.query import LedgerReader

    return LedgerReader(ledger_location(ledger, home=home)).history(
        model,
        key=key,
        since=_moment("since", since),
        until=_moment("until", until),
        source=source,
        version=version,
        limit=limit,
    )


def ledger_export(
    model: str,
    output: str | Path,
    *,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    ledger: str | Path | None = None,
    home: Path | str | None = None,
) -> dict[str, Any]:
    """Every prediction of `model` with its label (joined point in time) as one Parquet file; the counts."""
    from foretell.ledger.query import LedgerReader

    reader = LedgerReader(ledger_location(ledger, home=home))
    counts = reader.export(model, output=Path(output), since=_moment("since", since), until=_moment("until", until))
    return counts.to_dict()


def ledger_stats(*, ledger: str | Path | None = None, home: Path | str | None = None) -> dict[str, Any]:
    """What the ledger holds per model (rows by source, files, bytes, labels) and its writers' totals (drops)."""
    from foretell.ledger.query import LedgerReader

    return LedgerReader(ledger_location(ledger, home=home)).stats()


def load_labels(
    model: str,
    source: str | Path,
    *,
    key: str,
    label: str,
    at: str | None = None,
    ledger: str | Path | None = None,
    home: Path | str | None = None,
) -> LabelLoad:
    """Outcomes from a Parquet/CSV/JSON file into the ledger's labels; bad rows go to a rejects file with reasons.

    `key`, `label` and `at` name the file's columns (without `at`, every outcome was observed now).
    `model` must be registered here or already in the ledger.
    """
    from foretell.errors import ModelNotFound
    from foretell.ledger.labels import check_model_name
    from foretell.ledger.labels import load_labels as load
    from foretell.ledger.segments import LedgerLocation

    location = LedgerLocation(ledger_location(ledger, home=home))
    check_model_name(model)
    if model not in {m.name for m in list_models(home=home)} and model not in location.models():
        raise ModelNotFound(f"no model {model!r} is registered or in the ledger at {location.url}; check the name")
    return load(location, model, Path(source), key=key, label=label, at=at)


def _moment(name: str, value: str | datetime | None) -> datetime | None:
    """A point in time from a datetime, a duration back from now (`24h`, `7d`) or ISO text (UTC unless it says)."""
    from datetime import UTC, datetime, timedelta

    from foretell.config import parse_duration

    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"{name} is a duration back from now (90m, 24h, 7d) or an ISO date/time (2026-12-04T10:00Z); got {value!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
