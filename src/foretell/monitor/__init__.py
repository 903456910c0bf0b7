"""`foretell monitor`: what a model's recorded traffic says about it, read from the prediction ledger.

One ledger session over the window (`LedgerReader.session`: DuckDB views over the segments,
the batch jobs' parts and inputs, and the labels, joined point in time) feeds every section:

- traffic: rows by source and hour, latency percentiles, errors and their top reasons;
- drift: each feature and output against the version's reference profile (`monitor.drift`);
- agreement: keys the batch scored and live scored again, split by whether their features
  changed in between (unchanged ones must agree exactly: a difference is a parity defect);
- quality: once labels have joined, per version × source (AUC, log loss, Brier, calibration,
  accuracy; hit rate@k for a recommender);

and the verdict reads them out in plain sentences. `report.render_monitor_report` draws the
same report as one self-contained HTML page.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foretell.errors import InvalidInput, ModelNotFound
from foretell.monitor.agreement import AgreementSection, agreement_section
from foretell.monitor.quality import QualitySection, Task, quality_section, task_of
from foretell.monitor.traffic import TrafficSection, traffic_section
from foretell.monitor.verdict import Verdict, verdict

if TYPE_CHECKING:
    from foretell.core.model import ModelInfo
    from foretell.ledger.segments import LedgerLocation
    from foretell.monitor.drift import DriftSection
    from foretell.profiles.drift import Thresholds

__all__ = ["MonitorReport", "run_monitor"]


@dataclass(frozen=True)
class MonitorReport:
    model: str
    version: int | None  # the version drift and the headline are about: asked for, else the busiest
    since: datetime
    until: datetime | None
    generated_at: datetime
    traffic: TrafficSection
    drift: DriftSection
    agreement: AgreementSection
    quality: QualitySection
    verdict: Verdict
    seconds: dict[str, float] = field(default_factory=dict)  # how long each section took

    def to_dict(self) -> dict[str, Any]:
        """What `foretell monitor --json` prints."""
        return {
            "model": self.model,
            "version": self.version,
            "since": self.since.isoformat(),
            "until": self.until.isoformat() if self.until else None,
            "generated_at": self.generated_at.isoformat(),
            "verdict": self.verdict.to_dict(),
            "traffic": self.traffic.to_dict(),
            "drift": self.drift.to_dict(),
            "agreement": self.agreement.to_dict(),
            "quality": self.quality.to_dict(),
            "seconds": dict(self.seconds),
        }


def run_monitor(
    location: LedgerLocation | str | Path,
    registry_home: str | Path,
    model: str,
    *,
    version: int | None,
    since: datetime,
    until: datetime | None,
    thresholds: Thresholds,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> MonitorReport:
    """Every section of the monitor over `model`'s predictions between `since` and `until` (None: now)."""
    from foretell.ledger.query import LedgerReader
    from foretell.monitor.drift import drift_section
    from foretell.registry.profiles import ProfileStore

    if until is not None and until < since:
        raise InvalidInput(f"until ({until.isoformat()}) is before since ({since.isoformat()})")
    reader = LedgerReader(location)
    versions = _versions(registry_home, model, reader)
    seconds: dict[str, float] = {}
    with reader.session(model, since=since, until=until) as session:
        started = time.perf_counter()
        traffic = traffic_section(session)
        seconds["traffic"] = time.perf_counter() - started
        if version is not None and version not in versions and version not in traffic.versions:
            known = ", ".join(str(v) for v in sorted(versions)) or "none"
            raise ModelNotFound(f"{model} has no version {version} (registered: {known}) and none in the ledger")
        chosen = version if version is not None else _busiest(traffic, versions)
        info = versions.get(chosen) if chosen is not None else None
        task = task_of(info.signature if info is not None else None)
        profile = ProfileStore(Path(registry_home)).load(model, chosen) if chosen is not None else None

        started = time.perf_counter()
        drift = drift_section(
            session, profile, thresholds, version=chosen, signature=info.signature if info is not None else None
        )
        seconds["drift"] = time.perf_counter() - started
        started = time.perf_counter()
        agreement = agreement_section(session, _compared_output(task))
        seconds["agreement"] = time.perf_counter() - started
        started = time.perf_counter()
        quality = quality_section(session, task)
        seconds["quality"] = time.perf_counter() - started
    return MonitorReport(
        model=model,
        version=chosen,
        since=since,
        until=until,
        generated_at=now(),
        traffic=traffic,
        drift=drift,
        agreement=agreement,
        quality=quality,
        verdict=verdict(model, traffic, drift, agreement, quality),
        seconds=seconds,
    )


def _versions(registry_home: str | Path, model: str, reader: Any) -> dict[int, ModelInfo]:
    """The model's registered versions; {} for a model only the ledger knows; ModelNotFound for neither."""
    from foretell.registry.sqlite import SqliteRegistry

    try:
        return {info.version: info for info in SqliteRegistry(Path(registry_home)).list_versions(model)}
    except ModelNotFound:
        if model in reader.location.models():
            return {}
        raise


def _busiest(traffic: TrafficSection, versions: dict[int, ModelInfo]) -> int | None:
    """The version with the most predictions in the window (the newer on a tie); else the newest registered."""
    if traffic.versions:
        return max(traffic.versions, key=lambda v: (traffic.versions[v], v))
    return max(versions, default=None)


def _compared_output(task: Task) -> str | None:
    """The output batch and live are compared on: the score (a recommender's lists are not one number)."""
    if task.kind in ("binary", "regression"):
        return task.output
    return "score" if task.kind == "none" else None
