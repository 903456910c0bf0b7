"""Scoring on a Ray cluster: Ray Data runs the chunks through a pool of actors, one model each.

The driver (the job's own process) plans the chunks from the Parquet footers and hands
Ray Data one small reference per chunk (file, first row, rows), never the rows. Each
actor loads the model once through foretell's own loader, reads its chunk where it runs,
and scores it with `score_chunk`: the same validation, prediction, part file and
rejects file as the local engine, so the job's guarantees are the local engine's.

Ray Data's own readers and writers are not used for the rows. Its readers cut blocks by
their own rules (parallelism, block size), so a chunk would not be the same rows in a
re-run, and its writers name files with a random id per run: a resumed job would score
twice and publish duplicates. Here chunk N is the same rows on every run, its part is
`part-N`, committed atomically by the actor, and the driver journals each record as it
comes back, exactly as with local workers. A chunk an actor finishes after its driver
died is committed under the same name again on resume: replaced, never duplicated.

A CSV or JSON-lines input has no footers to plan from: the driver cuts it into chunks and
stages each as a Parquet file beside the job's parts, and the actors read those.

On a cluster, every node must see the registry (FORETELL_HOME), the input and the
output at the same paths (a shared filesystem), and have foretell installed
(docs/scale-out.md).
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import warnings
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from foretell.batch.engines.base import Chunks
from foretell.batch.manifest import ChunkRecord
from foretell.batch.scoring import ScoringSpec, score_chunk
from foretell.batch.sources import ChunkRef, InputFormat, open_source
from foretell.errors import EngineUnavailable, MissingExtra

__all__ = ["RayEngine", "import_ray"]


def import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise MissingExtra("ray", "ray", "ray", needed_by="--engine ray") from exc
    return ray


class RayEngine:
    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        self.workers = workers
        """Actors in the pool (default: one per CPU of the cluster)."""
        self.address = address
        """A running cluster (`ray://host:10001`, `host:6379` or `auto`); None starts one on this machine
        for the job (never one that RAY_ADDRESS or `ray start` names: pass `auto` for that)."""

    def run(self, spec: ScoringSpec, chunks: Chunks) -> Iterator[ChunkRecord]:
        staging = Path(spec.staged).absolute().parent / "input"
        if chunks.source.format == "parquet":
            refs, location, fmt = chunks.refs(), chunks.source.location, chunks.source.format
        else:
            refs, location, fmt = _staged(chunks, staging), str(staging), "parquet"
        if not refs:
            return
        ray = import_ray()
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # its notices would interleave with the job's lines
        started_here = not ray.is_initialized()
        if started_here:
            # ray.init installs its own SIGTERM and SIGINT handlers (exit at once); the job's own,
            # which stop it between chunks and record it as interrupted, are put back after it.
            handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
            try:
                ray.init(
                    address=self.address or "local",  # never a RAY_ADDRESS or `ray start` cluster by surprise
                    num_cpus=None if self.address else self.workers,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                )
            except (ConnectionError, ValueError, RuntimeError) as exc:
                where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
                raise EngineUnavailable(
                    f"could not start on {where}: {exc}. Nothing was scored; resume the job when the cluster "
                    "is up (`foretell batch resume JOB --ray-address ADDRESS` to point it elsewhere)"
                ) from exc
            finally:
                for sig, handler in handlers.items():
                    if handler is not None:
                        signal.signal(sig, handler)
        try:
            yield from self._score(ray, _absolute(spec), location, fmt, refs)
        finally:
            if started_here:
                ray.shutdown()
        shutil.rmtree(staging, ignore_errors=True)  # every chunk is scored: the copies are not needed

    def _score(
        self, ray: Any, spec: ScoringSpec, location: str, fmt: InputFormat, refs: list[ChunkRef]
    ) -> Iterator[ChunkRecord]:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the job reports its own progress
        context.execution_options.preserve_order = False  # records are journaled in whatever order they end
        pool = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        items = [asdict(ref) for ref in refs]
        if "://" not in location:
            location = str(Path(location).absolute())  # actors may start elsewhere than the driver
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Ray's: these go in named options, some day
            scored = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
                ChunkScorer,
                fn_constructor_kwargs={"spec": spec, "location": location, "fmt": fmt},
                batch_size=1,
                batch_format="numpy",
                concurrency=min(pool, len(items)),
                num_cpus=1,
                # An actor that crashes fails the job (resume finishes it): Ray Data's default is to
                # restart it and retry its chunk forever, which a chunk that crashes it would loop on.
                max_restarts=0,
                max_task_retries=0,
            )
        for row in scored.iter_rows():
            yield ChunkRecord(
                chunk=int(row["chunk"]),
                rows=int(row["rows"]),
                scored=int(row["scored"]),
                rejected=int(row["rejected"]),
                part=str(row["part"]) or None,
                reject_part=str(row["reject_part"]) or None,
                compare=json.loads(str(row["compare"])) if row["compare"] else None,
            )


def _staged(chunks: Chunks, staging: Path) -> list[ChunkRef]:
    """CSV or JSON lines cut into chunks here, each staged as a Parquet file beside the job's parts.

    Only Parquet says where a row is, so these are read once, by the driver, and each chunk is
    written where the actors can read it. A resumed job reuses the chunks already staged.
    """
    import pyarrow.parquet as pq

    staging.mkdir(parents=True, exist_ok=True)
    refs = []
    for number, batch in chunks.batches():
        path = staging / f"chunk-{number:06d}.parquet"
        if not path.is_file():
            temp = path.with_name(f".tmp-{path.name}")
            pq.write_table(pa.Table.from_batches([batch]), temp)
            temp.replace(path)  # whole or absent: a kill mid-write leaves no half chunk to reuse
        refs.append(ChunkRef(number, str(path), 0, batch.num_rows))
    return refs


def _absolute(spec: ScoringSpec) -> ScoringSpec:
    """The job's folders, registry and store as absolute paths: an actor's working directory is not the driver's."""
    return replace(
        spec,
        model=replace(spec.model, home=spec.model.home.absolute()),
        staged=str(Path(spec.staged).absolute()),
        staged_rejects=str(Path(spec.staged_rejects).absolute()),
        store=None if spec.store is None else replace(spec.store, home=spec.store.home.absolute()),
        challenger=None if spec.challenger is None else replace(spec.challenger, home=spec.challenger.home.absolute()),
    )


class ChunkScorer:
    """A Ray Data actor: the model loaded once, then one chunk reference in, its record out."""

    def __init__(self, spec: ScoringSpec, location: str, fmt: InputFormat) -> None:
        from threadpoolctl import threadpool_limits

        self.spec = spec
        self.source = open_source(location, fmt)
        self.model = spec.model.load()
        self.challenger = None if spec.challenger is None else spec.challenger.load()
        self.limits = threadpool_limits(1)  # one CPU per actor: Ray gives the parallelism

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        fields = ("chunk", "rows", "scored", "rejected", "part", "reject_part", "compare")
        out: dict[str, list[Any]] = {k: [] for k in fields}
        for i in range(len(batch["number"])):
            ref = ChunkRef(
                int(batch["number"][i]), str(batch["file"][i]), int(batch["first_row"][i]), int(batch["rows"][i])
            )
            record = score_chunk(self.model, self.spec, ref.number, self.source.read(ref), self.challenger)
            out["chunk"].append(record.chunk)
            out["rows"].append(record.rows)
            out["scored"].append(record.scored)
            out["rejected"].append(record.rejected)
            out["part"].append(record.part or "")
            out["reject_part"].append(record.reject_part or "")
            out["compare"].append(json.dumps(record.compare) if record.compare else "")  # its figures, as text
        return out
