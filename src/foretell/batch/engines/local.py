"""Scoring on this machine's cores: worker processes, each loading the model once, or threads.

The parent reads chunks and hands each to a worker as Arrow buffers; the worker writes
its own part file, so predictions never travel back through the parent. At most two
chunks per worker are in flight, which bounds memory whatever the input's size.
Native thread pools (OpenMP, BLAS) are capped per worker so workers × threads fits the
cores: OpenMP threads fighting another process for the cores make every model call wait
on its thread barriers (docs/benchmarks.md, "batch: scoring a population from Parquet").

A predictor that runs outside the GIL (a compiled library, ONNX Runtime for a compiled
graph or an ONNX model) is scored on threads of the job's own process instead, sharing
one loaded model: no fork server to start, no chunk copied between processes. The
price: a crash inside native code ends the job's process, not one worker (either way
the job resumes from its committed chunks). Reading and writing Parquet leave the GIL
too, so the threads keep the cores busy (docs/benchmarks.md, "compile: compiled predictors
against the originals", Batch).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.util
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from typing import Any

import pyarrow as pa
from threadpoolctl import threadpool_limits

from foretell import tracing
from foretell.batch.engines.base import Chunks
from foretell.batch.manifest import ChunkRecord
from foretell.batch.scoring import ScoringSpec, score_chunk
from foretell.core.model import Model
from foretell.registry import ModelSource

__all__ = ["LocalEngine", "default_workers"]


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class LocalEngine:
    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or default_workers())

    def run(self, spec: ScoringSpec, work: Chunks) -> Iterator[ChunkRecord]:
        chunks = work.batches()
        if self.workers == 1:
            yield from _in_process(spec, chunks)
            return
        # Threads only when every version the job scores with runs outside the GIL (with --compare, both).
        model = _outside_gil(spec.model)
        challenger = None if spec.challenger is None or model is None else _outside_gil(spec.challenger)
        if model is not None and (spec.challenger is None or challenger is not None):
            yield from _on_threads(model, spec, self.workers, chunks, challenger)
            return
        model = challenger = None  # `auto` fell back to the original: each worker loads its own, the parent keeps none
        # Workers fork from a fork server started before any of our threads, which has
        # already imported the frameworks: fork's speed without forking a threaded parent.
        context = multiprocessing.get_context("forkserver")
        frameworks = [name for source in (spec.model, spec.challenger) if source for name in _frameworks(source)]
        context.set_forkserver_preload(["foretell.registry", "foretell.batch.scoring", *frameworks])
        initargs = (spec, os.getpid())
        with ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start, initargs=initargs) as pool:
            yield from _bounded(pool, self.workers, chunks, lambda n, b: (_score, n, _to_ipc(b)))


def _outside_gil(source: ModelSource) -> Model | None:
    """The loaded model when its predictor runs outside the GIL, else None.

    Only a predictor that may (a compiled one, an ONNX model) is loaded here to find out.
    """
    info = source.info
    may_compile = source.predictor != "original" and info.compiled_passed
    if not (may_compile or info.flavor == "onnx"):
        return None
    model = source.load()
    return model if model.releases_gil else None


def _on_threads(
    model: Model,
    spec: ScoringSpec,
    workers: int,
    chunks: Iterator[tuple[int, pa.RecordBatch]],
    challenger: Model | None = None,
) -> Iterator[ChunkRecord]:
    with threadpool_limits(spec.threads), ThreadPoolExecutor(workers, "foretell-score") as threads:
        yield from _bounded(threads, workers, chunks, lambda n, b: (score_chunk, model, spec, n, b, challenger))


def _bounded(
    executor: Executor,
    workers: int,
    chunks: Iterator[tuple[int, pa.RecordBatch]],
    task: Callable[[int, pa.RecordBatch], tuple[Any, ...]],
) -> Iterator[ChunkRecord]:
    """Each chunk's record as it is committed, with at most two chunks per worker in flight."""
    pending: set[Future[ChunkRecord]] = set()
    try:
        for number, batch in chunks:
            pending.add(executor.submit(*task(number, batch)))
            if len(pending) >= 2 * workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (future.result() for future in done)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (future.result() for future in done)
    finally:
        for future in pending:
            future.cancel()


#: What each way of predicting imports when it loads: worth importing once, in the fork server.
_FRAMEWORKS = {
    "sklearn": "sklearn.ensemble",
    "lightgbm": "lightgbm",
    "xgboost": "xgboost",
    "onnx": "onnxruntime",
    "treelite": "tl2cgen",
}


def _frameworks(source: ModelSource) -> list[str]:
    """The framework the workers will load the model with: the compiled predictor's, or the flavor's.

    Importing scikit-learn takes over a second, which a job scoring with a compiled
    predictor would spend for nothing before its first chunk.
    """
    info = source.info
    if source.predictor != "original" and info.compiled_passed:
        return [_FRAMEWORKS.get(str((info.compiled or {}).get("compiler")), "")][:1]
    module = _FRAMEWORKS.get(info.flavor)
    return [module] if module else []


def _in_process(spec: ScoringSpec, chunks: Iterator[tuple[int, pa.RecordBatch]]) -> Iterator[ChunkRecord]:
    model = spec.model.load()
    challenger = None if spec.challenger is None else spec.challenger.load()
    with threadpool_limits(spec.threads):
        for number, batch in chunks:
            yield score_chunk(model, spec, number, batch, challenger)


_worker: dict[str, Any] = {}


def _start(spec: ScoringSpec, job_pid: int) -> None:
    if spec.traceparent is not None:  # the job traces: so does each worker process, exporting its own chunk spans
        tracing.enable()
        # A pool's worker leaves through os._exit, which runs no atexit hook: its last spans go out here.
        multiprocessing.util.Finalize(None, tracing.disable, exitpriority=10)
    _worker["spec"] = spec
    _worker["model"] = spec.model.load()
    _worker["challenger"] = None if spec.challenger is None else spec.challenger.load()
    _worker["limits"] = threadpool_limits(spec.threads)  # held for the worker's life
    threading.Thread(target=_exit_with, args=(job_pid,), name="foretell-job-watch", daemon=True).start()


def _exit_with(job_pid: int) -> None:
    """End this worker when the job's process is gone.

    A job killed with SIGKILL cannot stop its workers, and they never see their task pipe
    close (every worker holds both ends), so without this they, and the fork server, would
    live on holding a model each. Exiting lets the fork server see its last client go too.
    """
    while True:
        time.sleep(1.0)
        try:
            os.kill(job_pid, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:
            pass  # the pid exists (owned by someone else after reuse, or not ours to signal)


def _to_ipc(batch: pa.RecordBatch) -> bytes:
    """The chunk as Arrow IPC bytes.

    A chunk is often a slice of a larger decoded block, and pickling a slice sends the
    whole block it points into, so each chunk would pipe most of the input to its worker
    (docs/benchmarks.md, "batch: scoring a population from Parquet"). IPC writes only the
    slice's own bytes.
    """
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue())


def _score(number: int, payload: bytes) -> ChunkRecord:
    batch = pa.ipc.open_stream(payload).read_next_batch()
    return score_chunk(_worker["model"], _worker["spec"], number, batch, _worker["challenger"])
