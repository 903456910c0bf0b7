"""A batch job as it was started: the typed `JobSpec`, and its one JSON form.

The JSON form (`to_record`) is what `_foretell/job.json` holds (a resume reads it back
with `from_record`), what the job history stores, and what the published
`_manifest.json` starts with. Its keys are the ones every earlier version wrote; the
options added since (the predictor, the engine and its cluster, the store's URL, the
ledger) read back as what a job did before they existed, so a job recorded by an older
foretell resumes as it would have there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from foretell.batch.sinks import OutputFormat
from foretell.batch.sources import InputFormat
from foretell.core.model import check_predictor_choice
from foretell.errors import InvalidInput
from foretell.formats import check_format
from foretell.registry import ModelSource, model_source, open_registry
from foretell.rollout import Guards

if TYPE_CHECKING:
    from foretell.store import PredictionStore

__all__ = ["ENGINES", "CompareTarget", "EngineName", "JobSpec", "StoreTarget", "check_engine"]

EngineName = Literal["local", "ray"]
ENGINES: tuple[EngineName, ...] = ("local", "ray")

_FORMATS: tuple[Literal["parquet", "csv", "jsonl"], ...] = ("parquet", "csv", "jsonl")


def check_engine(name: str) -> EngineName:
    for known in ENGINES:
        if name == known:
            return known
    raise InvalidInput(f"engine must be one of {', '.join(ENGINES)}; got {name!r}")


@dataclass(frozen=True)
class StoreTarget:
    """With `to_store`: the prediction store a job fills, and the unpublished generation it publishes last."""

    model: str
    generation: int
    url: str | None
    """A Redis URL; None: the SQLite store in `home`."""
    home: Path
    """FORETELL_HOME, absolute: where the SQLite store lives (a worker may run in another directory)."""

    def open(self) -> PredictionStore:
        from foretell.store import open_store

        return open_store(self.home, self.url)


@dataclass(frozen=True)
class CompareTarget:
    """With `--compare`: the challenger version pinned at job start, as asked, and the guards its verdict uses."""

    model: ModelSource
    uri: str
    """The challenger as asked (`3`, `churn@staging`); `model` is the version it named when the job started."""
    guards: Guards

    def to_record(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "pinned_uri": self.model.uri,
            "version": self.model.info.version,
            "predictor": self.model.predictor,
            "guards": self.guards.to_dict(),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any], home: Path) -> CompareTarget:
        predictor = check_predictor_choice(str(record["predictor"]))
        model = model_source(open_registry(home), str(record["pinned_uri"]), predictor=predictor)
        return cls(model, str(record["uri"]), Guards.from_dict(record["guards"]))


@dataclass(frozen=True)
class JobSpec:
    """Everything a job was started with: the pinned model, its input and output, its sink and store settings."""

    id: str
    model_uri: str
    """The URI as asked (`churn@production`); `model` is the version it named when the job started."""
    model: ModelSource
    """The pinned version, and its predictor settled at the start (`original` or `compiled`)."""
    input: str
    output: str
    started_at: str
    id_column: str
    passthrough: tuple[str, ...]
    chunk_rows: int
    workers: int | None
    """Processes or threads on the local engine; actors on Ray (None: one per CPU of the cluster)."""
    input_format: InputFormat
    output_format: OutputFormat
    max_reject_ratio: float
    single_file: bool = False
    engine: EngineName = "local"
    ray_address: str | None = None
    store: StoreTarget | None = None
    ledger: str | None = None
    """The prediction ledger (a folder or fsspec URL) that indexes the published output; None: not indexed."""
    compare: CompareTarget | None = None
    """With `--compare`: the challenger that scores every chunk beside the model."""

    def to_record(self) -> dict[str, Any]:
        """The JSON form (see the module docstring)."""
        record: dict[str, Any] = {
            "id": self.id,
            "model_uri": self.model_uri,
            "model_version": self.model.info.version,
            "pinned_uri": self.model.uri,
            "input": self.input,
            "output": self.output,
            "started_at": self.started_at,
            "options": {
                "id_column": self.id_column,
                "passthrough": list(self.passthrough),
                "chunk_rows": self.chunk_rows,
                "workers": self.workers,
                "input_format": self.input_format,
                "output_format": self.output_format,
                "max_reject_ratio": self.max_reject_ratio,
                "single_file": self.single_file,
                "to_store": self.store is not None,
                "predictor": self.model.predictor,
                "engine": self.engine,
                "ray_address": self.ray_address,
                "ledger": self.ledger,
            },
        }
        if self.store is not None:
            record["store"] = {"model": self.store.model, "generation": self.store.generation, "url": self.store.url}
        if self.compare is not None:
            record["compare"] = self.compare.to_record()
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any], home: Path) -> JobSpec:
        """The job a record describes, its pinned version read again from the registry in `home`."""
        try:
            options = record["options"]
            pinned = str(record["pinned_uri"])
            # Jobs recorded before compiling existed scored with the original predictor.
            predictor = str(options.get("predictor", "original"))
            stored = record.get("store")
            compared = record.get("compare")
            fields: dict[str, Any] = {
                "id": str(record["id"]),
                "model_uri": str(record["model_uri"]),
                "input": str(record["input"]),
                "output": str(record["output"]),
                "started_at": str(record["started_at"]),
                "id_column": str(options["id_column"]),
                "passthrough": tuple(options["passthrough"]),
                "chunk_rows": int(options["chunk_rows"]),
                "workers": None if options["workers"] is None else int(options["workers"]),
                "input_format": check_format(options["input_format"]),
                "output_format": _output_format(options["output_format"]),
                "max_reject_ratio": float(options["max_reject_ratio"]),
                "single_file": bool(options.get("single_file", False)),
                "engine": check_engine(options.get("engine", "local")),
                "ray_address": options.get("ray_address"),
                "ledger": options.get("ledger"),
                "store": (
                    StoreTarget(stored["model"], int(stored["generation"]), stored.get("url"), Path(home).absolute())
                    if stored
                    else None
                ),
            }
        except (KeyError, TypeError, ValueError) as exc:
            what = f"job {record.get('id')!r}" if isinstance(record, Mapping) else "the job"
            raise InvalidInput(
                f"cannot read the record of {what} ({type(exc).__name__}: {exc}); "
                "delete its output folder and run the job again"
            ) from None
        model = model_source(open_registry(home), pinned, predictor=check_predictor_choice(predictor))
        challenger = None if compared is None else CompareTarget.from_record(compared, home)
        return cls(model=model, compare=challenger, **fields)


def _output_format(value: object) -> Literal["parquet", "csv", "jsonl"]:
    for known in _FORMATS:
        if value == known:
            return known
    raise ValueError(f"unknown file format {value!r}")
