"""Each dashboard page's JSON document, built from the functions the CLI's `--json` output prints.

Models from the registry (`models list/show --json`), jobs from the job history (`batch list --json`)
with a running job's progress read from its output's journal, schedules (`schedule list --json`),
the store's generations, rollouts (`rollout status --json`) and monitoring (`monitor --json`).
Whatever reads the ledger scans Parquet files, so it is cached for `ttl` seconds; every
document is built in a worker thread (`asyncio.to_thread`), never on the serving event loop.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow.parquet as pq

from foretell.batch.history import JobHistory
from foretell.batch.manifest import REJECTS, JobFolder
from foretell.batch.schedules import ScheduleBook
from foretell.errors import ForetellError
from foretell.ledger.query import LedgerReader
from foretell.monitor import run_monitor
from foretell.monitor.rollout_status import rollout_status
from foretell.profiles.drift import Thresholds
from foretell.registry import SqliteRegistry, open_registry
from foretell.registry.profiles import ProfileStore
from foretell.store import open_entity_store, open_store
from foretell.threads import run_in_background

__all__ = ["KEPT_FOLDER", "MONITOR_WINDOW", "PAGES", "KeptReports", "Pages"]

log = logging.getLogger("foretell.ui")

PAGES = ("models", "jobs", "live", "store", "rollout", "monitor")
MONITOR_WINDOW = timedelta(hours=24)
"""The window the Monitor page reads, as `foretell monitor` does by default (`--since 24h`)."""
KEPT_FOLDER = "dashboard"
"""Where in the home the dashboard keeps each model's last monitor reading, for the next start to show at once."""
JOBS_SHOWN = 20
"""As many jobs as `foretell batch list` shows."""
REJECTS_SHOWN = 5
"""Rejected rows shown per job, with their reasons."""


class Pages:
    """The documents of every page but Live, for the registry, jobs, store and ledger under `home`."""

    def __init__(
        self, home: Path, *, store_url: str | None, ledger: str, ttl: float = 10.0, monitor_ttl: float = 60.0
    ) -> None:
        self.home = home
        self.store_url = store_url
        self.ledger = ledger
        self.monitor_ttl = monitor_ttl
        """The monitor reads every feature of the window's rows (seconds over a 1M-row batch): a minute apart."""
        self._cache = _Cache(ttl)
        self._samples: dict[str, list[dict[str, Any]]] = {}  # a finished job's rejects never change
        self._kept = KeptReports(home / KEPT_FOLDER, ledger)
        for model, report in self._kept.load().items():
            self._cache.seed(f"monitor:{model}", report)

    def registry(self) -> SqliteRegistry:
        return open_registry(self.home)

    def models(self) -> dict[str, Any]:
        """Every model (`models list --json`) with its versions (`models list NAME --json`), each version's
        reference profile summed up, and the served version shown whole (`models show NAME@production --json`)."""
        registry = self.registry()
        profiles = ProfileStore(self.home)
        shown = []
        for summary in registry.list_models():
            versions = []
            for info in registry.list_versions(summary.name):
                profile = profiles.load(info.name, info.version)
                versions.append({**info.to_dict(), "profile": profile.to_dict() if profile is not None else None})
            shown.append({**summary.to_dict(), "versions": versions})
        return {"models": shown}

    def jobs(self) -> dict[str, Any]:
        """The recent jobs (`batch list --json`), a running job's progress, and the schedules with their last run."""
        jobs = JobHistory(self.home).list(JOBS_SHOWN)
        for job in jobs:
            job["progress"] = _progress(job) if job["status"] == "running" else None
            job["rejects_sample"] = self._samples.get(job["id"]) if job["rejected"] else None
            if job["rejected"] and job["status"] != "running" and job["rejects_sample"] is None:
                job["rejects_sample"] = self._samples[job["id"]] = _rejects_sample(job)
        return {"jobs": jobs, "schedules": ScheduleBook(self.home).described()}

    def store(self) -> dict[str, Any]:
        """Per model: the published generation, when, its rows and the live rows since (the store's own counts),
        and what the ledger says of precomputed answers, live fallbacks and event refreshes (cached)."""
        names = [m.name for m in self.registry().list_models()]
        store = open_store(self.home, self.store_url)
        try:
            generations = [store.stats(name) for name in names]
        finally:
            store.close()
        entities = open_entity_store(self.home, self.store_url)
        try:
            tables = [t.to_dict() for t in entities.tables()]
        finally:
            entities.close()
        return {"generations": generations, "entities": tables, "ledger": self.ledger_stats()}

    def ledger_stats(self) -> dict[str, Any] | None:
        """`ledger stats --json`, cached: it lists every segment file."""
        stats: dict[str, Any] | None = self._cache.get("ledger", self._ledger_stats)
        return stats

    def rollout(self) -> dict[str, Any]:
        """`rollout status NAME --json` for every model that has had a rollout."""
        registry = self.registry()
        shown = {}
        for summary in registry.list_models():
            if registry.rollouts.latest(summary.name) is not None:
                shown[summary.name] = self._cache.get(f"rollout:{summary.name}", partial(self._rollout, summary.name))
        return {"rollouts": shown}

    def monitor(self) -> dict[str, Any]:
        """`monitor NAME --json` over the last 24 hours for every model, cached: it reads the ledger.

        Never waited for: a model whose first reading is still being computed shows as pending (with
        when it began), and the last reading of an earlier run (kept in the home) is served meanwhile.
        """
        reports: dict[str, Any] = {}
        pending = []
        for summary in self.registry().list_models():
            key, compute = f"monitor:{summary.name}", partial(self._monitor, summary.name)
            report = self._cache.get(key, compute, self.monitor_ttl, wait=False)
            if report is None:
                began = self._cache.computing_since(key)
                report = {"model": summary.name, "pending": True, "started_at": began.isoformat() if began else None}
                pending.append(summary.name)
            reports[summary.name] = report
        return {"window_hours": MONITOR_WINDOW.total_seconds() / 3600, "monitors": reports, "pending": pending}

    def _ledger_stats(self) -> dict[str, Any] | None:
        if "://" not in self.ledger and not Path(self.ledger).exists():
            return None
        return LedgerReader(self.ledger).stats()

    def warm(self) -> None:
        """Compute what reads the ledger once, ahead of the first page view (a server calls it once started).

        Call it on a thread of its own: it lowers that thread's priority, as each refresh's, so that the
        monitor's seconds of DuckDB (whose threads inherit the priority) wait for the requests being served.
        """
        run_in_background()
        self.ledger_stats()
        self.rollout()
        self.monitor()

    def forget(self) -> None:
        """Drop every cached figure: after an action, the next reading shows its effect."""
        self._cache.clear()

    def _rollout(self, model: str) -> dict[str, Any]:
        return rollout_status(self.registry(), model, self.ledger)

    def _monitor(self, model: str) -> dict[str, Any]:
        try:
            since = datetime.now(UTC) - MONITOR_WINDOW
            report = run_monitor(
                self.ledger, self.home, model, version=None, since=since, until=None, thresholds=Thresholds()
            )
        except ForetellError as exc:  # no ledger yet, no traffic in the window: the page says so
            return {"model": model, "error": str(exc)}
        found = report.to_dict()
        self._kept.save(model, found)
        return found


class KeptReports:
    """Each model's last monitor document, one JSON file per model, for the ledger it was read from.

    A server that starts shows these at once, marked with when they were made (`generated_at`), while
    it computes new ones: the monitor over a big ledger takes seconds. A file written for another ledger
    location, or unreadable, is ignored; files are replaced whole (a rename), so two workers can share them.
    """

    def __init__(self, folder: Path, ledger: str) -> None:
        self.folder = folder
        self.ledger = ledger

    def load(self) -> dict[str, dict[str, Any]]:
        found = {}
        for path in sorted(self.folder.glob("monitor-*.json")) if self.folder.is_dir() else ():
            try:
                kept = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(kept, dict) and kept.get("ledger") == self.ledger and isinstance(kept.get("report"), dict):
                found[str(kept["report"].get("model"))] = kept["report"]
        return found

    def save(self, model: str, report: dict[str, Any]) -> None:
        path = self.folder / f"monitor-{quote(model, safe='')}.json"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            partial_path = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
            partial_path.write_text(json.dumps({"ledger": self.ledger, "report": report}, default=str))
            partial_path.replace(path)
        except OSError as exc:  # a read-only home still serves the dashboard: only the next start waits
            log.warning("cannot keep the monitor's reading of %s in %s: %s", model, self.folder, exc)


def _progress(job: dict[str, Any]) -> dict[str, Any]:
    """A running job's rows so far, from the journal its output folder keeps of each committed chunk."""
    committed = JobFolder(Path(job["output"])).committed() if "://" not in job["output"] else {}
    return {
        "chunks": len(committed),
        "rows": sum(r.rows for r in committed.values()),
        "scored": sum(r.scored for r in committed.values()),
        "rejected": sum(r.rejected for r in committed.values()),
    }


def _rejects_sample(job: dict[str, Any]) -> list[dict[str, Any]]:
    """The first rejected rows of a finished job (id, chunk, raw values, reason), from its Parquet rejects file;
    none for the other formats (the page says where the file is) or an output on a remote filesystem."""
    folder = Path(job["output"]) / REJECTS
    if "://" in job["output"] or not folder.is_dir():
        return []
    for part in sorted(folder.glob("*.parquet")):
        for batch in pq.ParquetFile(part).iter_batches(batch_size=REJECTS_SHOWN):
            return [dict(row) for row in batch.to_pylist()]
    return []


class _Cache:
    """Values computed once, then served while a thread computes them again once they are `ttl` seconds old:
    a page never waits for the ledger twice, and sees figures at most `ttl` seconds (plus one reading) old.

    A value asked for with `wait=False` is never waited for even the first time: until its first reading
    is done, `get` answers None (the page says the figures are being computed), and `clear` keeps it, as
    stale, rather than dropping it. That is the monitor, seconds of work over a big ledger."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._values: dict[str, tuple[float, Any]] = {}
        self._refreshing: set[str] = set()
        self._first: dict[str, threading.Lock] = {}
        self._unwaited: set[str] = set()
        self._started: dict[str, datetime] = {}  # when each refresh in flight began
        self._cleared = 0  # a refresh begun before a `clear` must not bring back what it dropped
        self._lock = threading.Lock()

    def get(self, key: str, compute: Callable[[], Any], ttl: float | None = None, *, wait: bool = True) -> Any:
        with self._lock:
            found = self._values.get(key)
            stale = found is None or time.monotonic() - found[0] >= (self.ttl if ttl is None else ttl)
            if not wait:
                self._unwaited.add(key)
            if (found is not None or not wait) and stale and key not in self._refreshing:
                self._refreshing.add(key)
                self._started[key] = datetime.now(UTC)
                refresh = (key, compute, self._cleared)
                # Not a daemon, as the warm-up (ui.mount): exiting during a DuckDB query must wait for it.
                threading.Thread(target=self._refresh, args=refresh, name="foretell-ui-refresh", daemon=False).start()
            first = self._first.setdefault(key, threading.Lock())
        if found is not None:
            return found[1]
        if not wait:
            return None
        with first:  # the first reading: nothing to show before it, and one thread makes it (the warm-up's, say)
            with self._lock:
                found = self._values.get(key)
            if found is not None:
                return found[1]
            value = compute()
            with self._lock:
                self._values[key] = (time.monotonic(), value)
            return value

    def seed(self, key: str, value: Any) -> None:
        """`value` as a stale reading of `key` (one kept from an earlier run): served until a refresh replaces it."""
        with self._lock:
            self._values.setdefault(key, (-math.inf, value))

    def computing_since(self, key: str) -> datetime | None:
        """When the reading of `key` in flight began; None when none is."""
        with self._lock:
            return self._started.get(key) if key in self._refreshing else None

    def clear(self) -> None:
        with self._lock:
            self._values = {k: (-math.inf, v) for k, (_, v) in self._values.items() if k in self._unwaited}
            self._cleared += 1

    def _refresh(self, key: str, compute: Callable[[], Any], cleared: int) -> None:
        run_in_background()  # a thread of its own: the figures can wait, the server's requests cannot
        try:
            value = compute()
            with self._lock:
                if cleared == self._cleared:
                    self._values[key] = (time.monotonic(), value)
        finally:
            with self._lock:
                self._refreshing.discard(key)
