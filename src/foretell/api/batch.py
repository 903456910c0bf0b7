"""Batch jobs: run, resume, their history, and the schedules that start them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foretell.api.environment import LEDGER_ENV, home_folder, store_url

if TYPE_CHECKING:
    from foretell.batch import BatchResult
    from foretell.batch.job import Progress
    from foretell.batch.scheduler import Scheduler
    from foretell.batch.schedules import ScheduleBook
    from foretell.rollout import Guards


def run_batch(
    model_uri: str,
    input: str | Path,
    output: str | Path,
    *,
    home: Path | str | None = None,
    progress: Progress | None = None,
    compare: str | None = None,
    guards: Sequence[str] | Guards = (),
    stage: bool = False,
    **options: Any,
) -> BatchResult:
    """Score a whole input into a published, exactly-once output (see `foretell.batch.run` for the options).

    With `to_store=True` the predictions go to the store `store_url` names, else to FORETELL_STORE_URL's,
    else to the SQLite store in `home`; with `stage=True` too, under `<model>/<version>`, where a rollout's
    challenger arm reads them. `compare` names a challenger (`"4"`, `"churn/4"`, `"churn@staging"`) that
    scores every row beside the model: its outputs go beside the model's, `_compare.json` holds the
    figures, and `guards` (`"NAME=VALUE"` strings or a `foretell.rollout.Guards`) judge them
    (`BatchResult.compare["verdict"]`).
    """

    from foretell import batch, tracing

    traced = options.pop("tracing", False)
    if traced:  # a span for the job and one per chunk, exported as OTEL_* says (docs/tracing.md)
        tracing.enable()
    if options.get("to_store") and options.get("store_url") is None:
        options["store_url"] = store_url()
    if options.get("ledger") is None:  # indexed in the ledger queries read, unless told otherwise
        options["ledger"] = os.environ.get(LEDGER_ENV) or True

    try:
        return batch.run(
            model_uri,
            input,
            output,
            home=home_folder(home),
            progress=progress,
            compare=compare,
            guards=guards,
            stage=stage,
            **options,
        )
    finally:
        if traced:  # the job's spans are exported before this returns
            tracing.disable()


def resume_batch(
    job_id: str, *, home: Path | str | None = None, progress: Progress | None = None, ray_address: str | None = None
) -> BatchResult:
    """Finish an interrupted or killed batch job: committed chunks are kept, the rest are scored.

    A job on Ray resumes on its own cluster, or on `ray_address` when given.
    """
    from foretell import batch

    return batch.resume(job_id, home=home_folder(home), progress=progress, ray_address=ray_address)


def batch_jobs(*, home: Path | str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The most recent batch jobs, newest first."""
    from foretell.batch.history import JobHistory

    return JobHistory(home_folder(home)).list(limit)


def batch_job(job_id: str, *, home: Path | str | None = None) -> dict[str, Any]:
    from foretell.batch.history import JobHistory

    return JobHistory(home_folder(home)).get(job_id)


def schedule_book(*, home: Path | str | None = None) -> ScheduleBook:
    """The schedules under `home` (`schedules.db`): add, list, remove, and their runs."""
    from foretell.batch.schedules import ScheduleBook

    return ScheduleBook(home_folder(home))


def scheduler(*, home: Path | str | None = None, **options: Any) -> Scheduler:
    """The long-running process that starts due schedules (see `foretell.batch.scheduler.Scheduler`)."""
    from foretell.batch.scheduler import Scheduler

    return Scheduler(home_folder(home), **options)
