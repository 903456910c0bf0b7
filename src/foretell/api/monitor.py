"""The monitor: what a model's recorded traffic says (`monitor`), and its HTML page (`monitor_report`)."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foretell.api.environment import home_folder
from foretell.api.ledger import _moment, ledger_location
from foretell.errors import InvalidInput, InvalidThresholds

if TYPE_CHECKING:
    from foretell.monitor import MonitorReport
    from foretell.profiles.drift import Thresholds

__all__ = ["monitor", "monitor_report", "monitor_thresholds"]

DEFAULT_SINCE = "24h"


def monitor_thresholds(thresholds: Thresholds | Mapping[str, Any] | str | Path | None = None) -> Thresholds:
    """Drift thresholds: the defaults, a mapping, or a TOML file (its `[thresholds]` table, else the whole file)."""
    from foretell.profiles.drift import Thresholds

    if thresholds is None:
        return Thresholds()
    if isinstance(thresholds, Thresholds):
        return thresholds
    if isinstance(thresholds, str | Path):
        path = Path(thresholds)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise InvalidThresholds(f"thresholds file {path} is not valid TOML: {exc}") from None
        table = data.get("thresholds", data)
        if not isinstance(table, Mapping):
            raise InvalidThresholds(f"thresholds file {path}: [thresholds] must be a table, got {table!r}")
        return Thresholds.from_mapping(table)
    return Thresholds.from_mapping(thresholds)


def monitor(
    model: str,
    *,
    version: int | None = None,
    since: str | datetime = DEFAULT_SINCE,
    until: str | datetime | None = None,
    thresholds: Thresholds | Mapping[str, Any] | str | Path | None = None,
    ledger: str | Path | None = None,
    home: Path | str | None = None,
) -> MonitorReport:
    """What `model`'s recorded traffic says: traffic, drift, batch-vs-live agreement, quality, and a verdict.

    `since`/`until` are a datetime, a duration back from now (`24h`, `7d`) or an ISO date/time;
    `version` is the one drift and the verdict are about (default: the busiest in the window).
    """
    from foretell.monitor import run_monitor

    start = _moment("since", since)
    if start is None:  # not reachable with a str or datetime, but `since=None` from Python means "the default"
        start = _moment("since", DEFAULT_SINCE)
    assert start is not None
    end = _moment("until", until)
    if version is not None and version < 1:
        raise InvalidInput(f"version must be 1 or more, got {version}")
    return run_monitor(
        ledger_location(ledger, home=home),
        home_folder(home),
        model,
        version=version,
        since=start.astimezone(UTC),
        until=end.astimezone(UTC) if end else None,
        thresholds=monitor_thresholds(thresholds),
    )


def monitor_report(report: MonitorReport) -> str:
    """The report as one self-contained HTML page (inline SVG plots, nothing fetched)."""
    from foretell.monitor.report import render_monitor_report

    return render_monitor_report(report)
