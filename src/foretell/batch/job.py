"""A batch job from start to published output: pin, check, score, record, publish.

Exactly once comes from three rules: a chunk's part name is fixed by its number; a part
is recorded in the journal only after its atomic rename; and the output is published
(moved into place, then `_manifest.json`, then `_SUCCESS`) only when every chunk is
recorded. A run killed at any moment resumes by skipping recorded chunks and redoing
the rest, which overwrites any part it had renamed but not yet recorded.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from foretell import tracing
from foretell.batch.compare import challenger_uri, compare_report, report_path
from foretell.batch.engines import Chunks, Engine, LocalEngine
from foretell.batch.engines.local import default_workers
from foretell.batch.history import JobHistory
from foretell.batch.ledger_index import index_in_ledger, ledger_location
from foretell.batch.manifest import ChunkRecord, JobFolder, atomic_json
from foretell.batch.scoring import ScoringSpec
from foretell.batch.sinks import OutputFormat, combine, sweep_temp
from foretell.batch.sources import InputFormat, open_source
from foretell.batch.spec import CompareTarget, EngineName, JobSpec, StoreTarget, check_engine
from foretell.core.model import PredictorChoice, check_predictor_choice
from foretell.errors import BatchJobFailed, InvalidInput, JobInterrupted
from foretell.registry import ModelSource, model_source, open_registry
from foretell.rollout import Guards, parse_guards, staged_store_name

__all__ = ["BatchResult", "resume", "run"]

Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class BatchResult:
    job_id: str
    status: str
    model_uri: str
    model_version: int
    input: str
    output: str
    rows: int
    scored: int
    rejected: int
    seconds: float
    rows_per_second: float
    parts: int
    resumed_chunks: int
    predictor: PredictorChoice = "original"
    """`compiled` or `original`: which predictor scored the rows (settled at job start)."""
    engine: EngineName = "local"
    """`local` or `ray`: what ran the chunks."""
    compare: dict[str, Any] | None = None
    """With `--compare`: where `_compare.json` is, the rows, the figures (`summary`) and the `verdict`."""
    store: str | None = None
    """With `--to-store`: the store name the generation went to (`churn`, or `churn/4` with `--stage`)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run(
    model_uri: str,
    input: str | Path,
    output: str | Path,
    *,
    home: Path,
    id_column: str | None = None,
    passthrough: Sequence[str] = (),
    chunk_rows: int = 65_536,
    workers: int | None = None,
    input_format: InputFormat | None = None,
    output_format: OutputFormat = "parquet",
    max_reject_ratio: float = 0.01,
    single_file: bool = False,
    to_store: bool = False,
    store_url: str | None = None,
    resume: bool = False,
    predictor: PredictorChoice = "auto",
    engine: str | Engine = "local",
    ray_address: str | None = None,
    ledger: bool | str | Path = True,
    compare: str | None = None,
    guards: Sequence[str] | Guards = (),
    stage: bool = False,
    progress: Progress | None = None,
) -> BatchResult:
    """Score every row of `input` with `model_uri` into `output`; see the module docstring for the guarantees.

    `output` is a folder of part files, or with `single_file` one file whose parts are
    staged in `<output>.foretell/` and joined into place by one atomic rename. With
    `to_store`, every id's prediction also goes into a new generation of the online
    prediction store, published right after the output: lookups switch from the previous
    generation to this one in one step. `predictor` picks the compiled predictor when the
    version has one that passed its parity proof (`auto`), or forces `original`/`compiled`.
    `engine` is `local` (this machine's cores) or `ray` (Ray Data on the cluster at
    `ray_address`, or on one started here); a resumed job keeps the engine it started with.
    A published Parquet output is indexed in the prediction ledger (`ledger`: True for
    `<home>/ledger`, a folder or fsspec URL, or False), so ledger queries find its rows.
    `compare` names a challenger (a version number of the same model, `name/N`, `name@alias`
    or a `models:/` URI) that scores every chunk too (`foretell.batch.compare`); `guards`
    (`NAME=VALUE` strings or a `Guards`) judge its `_compare.json`. With `stage`, the store
    generation goes under `churn/<version>`, where a rollout's challenger arm reads it.
    """
    check_predictor_choice(predictor)
    engine_name = check_engine(engine if isinstance(engine, str) else engine.name)
    if chunk_rows < 1:
        raise InvalidInput(f"chunk_rows must be at least 1, got {chunk_rows}")
    if not 0 <= max_reject_ratio <= 1:
        raise InvalidInput(f"max_reject_ratio must be between 0 and 1, got {max_reject_ratio}")
    if stage and not to_store:
        raise InvalidInput("--stage goes with --to-store: it stages the job's store generation for a rollout")
    if guards and compare is None:
        raise InvalidInput("--guard goes with --compare: the guards judge the challenger's figures")
    checked = guards if isinstance(guards, Guards) else parse_guards(guards)
    folder = JobFolder(_job_folder(Path(output), single_file))
    previous = folder.read_job()
    if previous is not None and resume:
        return _execute(JobSpec.from_record(previous, home), folder, home, _given(engine), progress)
    if folder.published:
        raise InvalidInput(f"{output} already holds a published output; choose another location or delete it")
    if previous is not None:
        raise InvalidInput(
            f"{output} holds unfinished job {previous['id']}: finish it with --resume "
            f"(or `foretell batch resume {previous['id']}`), or delete the folder"
        )
    model = model_source(open_registry(home), model_uri, predictor=predictor)
    info = model.info
    source = open_source(input, input_format)
    features = info.signature.input_names
    id_column = id_column or next((c for c in source.columns if c not in features), source.columns[0])
    target = None
    if compare is not None:
        challenger = model_source(open_registry(home), challenger_uri(info.name, compare), predictor=predictor)
        target = CompareTarget(replace(challenger, predictor=_settled_predictor(challenger)), compare, checked)
    required = [f.name for f in info.signature.inputs if f.required]  # optional features may be left out
    if target is not None:
        required += [f.name for f in target.model.info.signature.inputs if f.required and f.name not in required]
    source.require([*required, id_column, *passthrough])
    if engine_name == "ray":
        from foretell.batch.engines.ray_data import import_ray

        import_ray()  # a missing extra is said now, before a job is recorded
    now = datetime.now(UTC)
    if engine_name == "local":
        workers = workers or default_workers()
    model = replace(model, predictor=_settled_predictor(model))
    store = None
    if to_store:
        from foretell.store import open_store

        opened = open_store(home, store_url)
        try:
            name = staged_store_name(info.name, info.version) if stage else info.name
            store = StoreTarget(name, opened.begin_generation(name), store_url, Path(home).absolute())
        finally:
            opened.close()
    job = JobSpec(
        id=f"job-{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}",
        model_uri=model_uri,
        model=model,
        input=str(input),
        output=str(output),
        started_at=now.isoformat(),
        id_column=id_column,
        passthrough=tuple(passthrough),
        chunk_rows=chunk_rows,
        workers=workers,
        input_format=source.format,
        output_format=output_format,
        max_reject_ratio=max_reject_ratio,
        single_file=single_file,
        engine=engine_name,
        ray_address=ray_address,
        store=store,
        ledger=ledger_location(ledger, home),
        compare=target,
    )
    with folder.locked():
        folder.reset()
        folder.write_job(job.to_record())
    return _execute(job, folder, home, _given(engine), progress)


def _given(engine: str | Engine) -> Engine | None:
    """An engine object passed in runs the job; a name is left to the job's spec (`_engine_for`)."""
    return None if isinstance(engine, str) else engine


def _engine_for(job: JobSpec) -> Engine:
    if job.engine == "ray":
        from foretell.batch.engines.ray_data import RayEngine

        return RayEngine(job.workers, job.ray_address)
    return LocalEngine(job.workers)


def _settled_predictor(model: ModelSource) -> PredictorChoice:
    """`auto` settled once, in the job's own process, so every chunk (a resumed one too) uses one predictor.

    The compiled predictor whenever it passed its parity proof and loads here, as the
    server decides: batch and real time must load the same predictor for their answers to
    stay identical, even where the compiled one is slower in bulk (an ONNX graph of a
    linear model against scikit-learn's BLAS on 65k rows). Loading it here also rebuilds it
    once, if this machine needs its own build, before any worker starts; and an explicit
    `compiled` with none to use is refused here, in one line, not in every worker.
    """
    if model.predictor == "original":
        return "original"
    if model.predictor == "auto" and not model.info.compiled_passed:
        return "original"
    return "original" if model.load().variant == "original" else "compiled"


def resume(
    job_id: str,
    *,
    home: Path,
    engine: Engine | None = None,
    ray_address: str | None = None,
    progress: Progress | None = None,
) -> BatchResult:
    """Finish an unfinished job: its recorded chunks are kept, the rest are scored, then it publishes.

    A job on Ray resumes on the cluster it started on, or on `ray_address` when given.
    """
    record = JobHistory(home).get(job_id)
    folder = JobFolder(_job_folder(Path(record["output"]), record["options"].get("single_file", False)))
    recorded = folder.read_job()
    if recorded is None or recorded.get("id") != job_id:
        raise InvalidInput(f"{record['output']} no longer holds job {job_id}'s work")
    job = JobSpec.from_record(recorded, home)
    if ray_address is not None:
        if job.engine != "ray":
            raise InvalidInput(f"job {job_id} runs on the {job.engine} engine, not on Ray")
        job = replace(job, ray_address=ray_address)
        with folder.locked():
            folder.write_job(job.to_record())
    return _execute(job, folder, home, engine, progress)


def _execute(
    job: JobSpec, folder: JobFolder, home: Path, engine: Engine | None, progress: Progress | None
) -> BatchResult:
    history = JobHistory(home)
    with folder.locked(), _stop_on_signals(), ExitStack() as stack:
        if folder.published:  # killed after publishing the output: finish the steps that follow it
            _finish_single_file(job, folder)
            index_in_ledger(job, folder, folder.committed())
            _store_step(job, "publish")
            return _result(job, "succeeded", folder.committed(), 0.0, 0)
        sweep_temp(folder.output)
        source = open_source(job.input, job.input_format)
        done = folder.committed()
        history.start(job.to_record())
        started = time.perf_counter()
        engine = engine or _engine_for(job)
        spec = ScoringSpec(
            model=job.model,
            id_column=job.id_column,
            passthrough=job.passthrough,
            staged=str(folder.staged),
            staged_rejects=str(folder.staged_rejects),
            output_format=job.output_format,
            predicted_at=job.started_at,
            threads=max(1, default_workers() // max(1, job.workers or 1)),
            store=job.store,
            challenger=None if job.compare is None else job.compare.model,
        )
        if tracing.tracer is not None:  # one span for the job; each chunk's, in whichever process, continues it
            attributes = {"foretell.job": job.id, "foretell.model": job.model.info.name}
            traced = stack.enter_context(tracing.span("batch job", **attributes))
            spec = replace(spec, traceparent=tracing.traceparent(traced))
        total = source.count_rows()
        resumed = len(done)
        rows_done = sum(r.rows for r in done.values())
        todo = Chunks(source, job.chunk_rows, frozenset(done))
        records = dict(done)
        try:
            for record in engine.run(spec, todo):
                folder.record(record)
                records[record.chunk] = record
                rows_done += record.rows
                if progress:
                    progress(rows_done, total)
        except (JobInterrupted, KeyboardInterrupt):
            _finish(history, job, "interrupted", records, started, "stopped by a signal; resume to finish")
            raise JobInterrupted(f"job {job.id} stopped; `foretell batch resume {job.id}` finishes it") from None
        except OSError as exc:  # a full disk, a folder gone: the user's to fix, then resume
            failure = BatchJobFailed(
                f"job {job.id} could not write under {job.output}: {exc}. Nothing was published; once that is "
                f"fixed (space freed, say), `foretell batch resume {job.id}` finishes the job"
            )
            _finish(history, job, "failed", records, started, str(failure))
            raise failure from exc
        except Exception as exc:
            _finish(history, job, "failed", records, started, str(exc))
            raise
        counts = _counts(records)
        ratio = counts["rejected"] / counts["rows"] if counts["rows"] else 0.0
        if ratio > job.max_reject_ratio:
            message = (
                f"{counts['rejected']} of {counts['rows']} rows ({ratio:.2%}) were rejected, more than "
                f"--max-reject-ratio {job.max_reject_ratio:.2%}; nothing was published. "
                f"The reasons are in {folder.staged_rejects}"
            )
            _finish(history, job, "failed", records, started, message)
            _store_step(job, "abandon")
            raise BatchJobFailed(message)
        seconds = time.perf_counter() - started
        parts = sorted(r.part for r in records.values() if r.part)
        manifest = {**job.to_record(), "status": "succeeded", "counts": counts, "seconds": seconds, "parts": parts}
        if job.compare is not None:  # before the manifest: a published output always has its comparison
            atomic_json(report_path(job), compare_report(job, records))
        folder.publish(records, manifest)
        _finish_single_file(job, folder)
        index_in_ledger(job, folder, records)
        _store_step(job, "publish")
        _finish(history, job, "succeeded", records, started)
        return _result(job, "succeeded", records, seconds, resumed)


def _store_step(job: JobSpec, step: str) -> None:
    """Publish (or abandon) the job's store generation; publishing twice is harmless on resume."""
    if job.store is None:
        return
    store = job.store.open()
    try:
        model, generation = job.store.model, job.store.generation
        if step == "abandon":
            store.abandon(model, generation)
        elif store.current_generation(model) != generation:
            store.publish(model, generation)
    finally:
        store.close()


def _job_folder(output: Path, single_file: bool) -> Path:
    return output.with_name(output.name + ".foretell") if single_file else output


def _finish_single_file(job: JobSpec, folder: JobFolder) -> None:
    """Join the published parts into the one file asked for (again, if a kill came in between)."""
    target = Path(job.output)
    if not job.single_file or target.is_file():
        return
    parts = sorted(folder.output.glob(f"part-*.{job.output_format}"))
    if parts:
        combine(parts, target, job.output_format, unique=(job.id_column,))


def _counts(records: dict[int, ChunkRecord]) -> dict[str, int]:
    return {
        "rows": sum(r.rows for r in records.values()),
        "scored": sum(r.scored for r in records.values()),
        "rejected": sum(r.rejected for r in records.values()),
    }


def _finish(
    history: JobHistory,
    job: JobSpec,
    status: str,
    records: dict[int, ChunkRecord],
    started: float,
    message: str | None = None,
) -> None:
    history.finish(
        job.id, status, _counts(records), datetime.now(UTC).isoformat(), time.perf_counter() - started, message
    )


def _result(job: JobSpec, status: str, records: dict[int, ChunkRecord], seconds: float, resumed: int) -> BatchResult:
    counts = _counts(records)
    return BatchResult(
        job_id=job.id,
        status=status,
        model_uri=job.model.uri,
        model_version=job.model.info.version,
        input=job.input,
        output=job.output,
        rows=counts["rows"],
        scored=counts["scored"],
        rejected=counts["rejected"],
        seconds=seconds,
        rows_per_second=counts["rows"] / seconds if seconds else 0.0,
        parts=sum(1 for r in records.values() if r.part),
        resumed_chunks=resumed,
        predictor=job.model.predictor,
        engine=job.engine,
        compare=None if job.compare is None else _compared(job, records),
        store=None if job.store is None else job.store.model,
    )


def _compared(job: JobSpec, records: dict[int, ChunkRecord]) -> dict[str, Any]:
    report = compare_report(job, records)
    keep = ("champion", "challenger", "rows", "summary", "verdict")
    return {"path": str(report_path(job)), **{k: report[k] for k in keep}}


class _stop_on_signals:  # noqa: N801 - used as a context manager, named like one
    """SIGTERM/SIGINT stop the job between chunks; a chunk being committed is never half-written."""

    def __enter__(self) -> None:
        self._previous = {s: signal.getsignal(s) for s in (signal.SIGTERM,)}
        signal.signal(signal.SIGTERM, self._raise)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    @staticmethod
    def _raise(signum: int, frame: FrameType | None) -> None:
        raise JobInterrupted(f"received signal {signum}")
