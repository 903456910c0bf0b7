"""How a rollout goes, as one document (plan, figures, guards, verdict, workers, events, quality per arm), and
ending one by hand.

`foretell rollout status --json` and the dashboard's Rollout page both print this document;
`foretell rollout promote/abort` and the page's buttons both end a rollout here.
"""

from __future__ import annotations

import getpass
import socket
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foretell.errors import ForetellError, InvalidRollout

if TYPE_CHECKING:
    from foretell.core.schema import Signature
    from foretell.registry import SqliteRegistry
    from foretell.rollout import Guards, Rollout, RolloutStats

__all__ = ["NO_LABELS", "end_rollout", "rollout_status", "who"]

NO_LABELS = "no labels yet"


def rollout_status(registry: SqliteRegistry, model: str, ledger_location: str) -> dict[str, Any]:
    """The active rollout of `model` (else the last one), its quality per arm read from the ledger there."""
    from foretell.rollout import judge

    rollout = _latest(registry, model)
    stats = registry.rollouts.stats(rollout.id)
    verdict = judge(stats, rollout.guards, auto=rollout.auto)
    figures = verdict.figures
    return {
        "rollout": rollout.to_dict(),
        "figures": figures,
        "guards": _guards(rollout.guards, stats, figures),
        "verdict": {"action": verdict.action, "reasons": list(verdict.reasons)},
        "workers": registry.rollouts.workers(rollout.id),
        "events": registry.rollouts.events(rollout.id),
        "quality": _quality(registry, rollout, ledger_location),
    }


def end_rollout(registry: SqliteRegistry, model: str, state: str, reason: str) -> Rollout:
    """End the active rollout of `model` as `promoted` (its alias moves to the challenger, in one transaction)
    or `aborted` (the alias stays on the champion); `rollout promote/abort` and the dashboard's buttons."""
    registry.list_versions(model)  # an unknown model is ModelNotFound, with the names that do exist
    rollout = registry.rollouts.active(model)
    if rollout is None:
        raise InvalidRollout(_no_active(registry, model))
    figures = registry.rollouts.stats(rollout.id).summary()
    ended = registry.rollouts.end(rollout, "promoted" if state == "promoted" else "aborted", reason, figures)
    if ended is None:  # a server's guards ended it between our read and our write
        latest = registry.rollouts.latest(model)
        how = f"{latest.state}: {latest.reason}" if latest is not None else "ended"
        raise InvalidRollout(f"the rollout of {model} ended before this command could end it ({how})")
    return ended


def _no_active(registry: SqliteRegistry, model: str) -> str:
    last = registry.rollouts.latest(model)
    if last is None:
        return f"model {model!r} has no active rollout (it never had one)"
    return f"model {model!r} has no active rollout (the last one, {last.id}, was {last.state}: {last.reason})"


def _latest(registry: SqliteRegistry, model: str) -> Rollout:
    registry.list_versions(model)
    rollout = registry.rollouts.latest(model)
    if rollout is None:
        raise InvalidRollout(
            f"model {model!r} has had no rollout; start one with `foretell rollout start {model} --challenger VERSION`"
        )
    return rollout


def _guards(guards: Guards, stats: RolloutStats, figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Each guard: its limit, its figure now, and whether it holds, as `judge` sees it.

    `holds` is None while a guard is off, or while its figure rests on too few samples for
    `judge` to act on it (a p99 of ten requests is one slow request).
    """
    from foretell.rollout.guards import MIN_TO_JUDGE_ERRORS, MIN_TO_JUDGE_LATENCY

    challenger = stats.challenger
    latency_samples = min(stats.champion.latency.count, challenger.latency.count)
    measured = {
        "max_error_rate": (challenger.error_rate, challenger.requests >= MIN_TO_JUDGE_ERRORS),
        "max_p99_ratio": (figures["p99_ratio"], latency_samples >= MIN_TO_JUDGE_LATENCY),
        "max_score_diff_p99": (figures["score_diff"]["p99"], True),
        "max_label_flip_rate": (figures["label_flip_rate"], True),
        "min_requests": (challenger.requests, True),
    }
    shown = []
    for name, limit in guards.to_dict().items():
        value, enough = measured[name]
        holds = None
        if limit is not None and value is not None and enough:
            holds = value >= limit if name == "min_requests" else value <= limit
        elif name == "max_label_flip_rate" and limit is not None and stats.compared and value is None:
            holds = False  # the model makes no decision to compare: `judge` blocks promotion on it
        shown.append({"name": name, "limit": limit, "value": value, "holds": holds})
    return shown


def _quality(registry: SqliteRegistry, rollout: Rollout, location: str) -> dict[str, Any]:
    """Quality per arm from the ledger's labelled predictions since the rollout began; never fails the status."""
    versions = {"champion": rollout.champion, "challenger": rollout.challenger}
    arms = {arm: {"version": v, "cells": []} for arm, v in versions.items()}
    empty = {"status": NO_LABELS, "labelled": 0, "arms": arms}
    try:
        signature = registry.get(f"{rollout.model}/{rollout.champion}").signature
        return _measured(rollout, signature, location, versions) or empty
    except (ForetellError, OSError) as exc:  # no ledger yet, or one that cannot be read: still a status
        return {**empty, "note": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}


def _measured(rollout: Rollout, signature: Signature, location: str, versions: dict[str, int]) -> dict[str, Any] | None:
    from foretell.ledger.query import LedgerReader
    from foretell.monitor.quality import quality_section, task_of

    if "://" not in location and not Path(location).exists():
        return None
    task = task_of(signature)
    since = datetime.fromisoformat(rollout.started_at.replace("Z", "+00:00"))
    until = datetime.fromisoformat(rollout.ended_at.replace("Z", "+00:00")) if rollout.ended_at else None
    with LedgerReader(location).session(rollout.model, since=since, until=until) as session:
        section = quality_section(session, task)
    cells = {arm: [c for c in section.cells if c.version == version] for arm, version in versions.items()}
    labelled = sum(c.labelled for found in cells.values() for c in found)
    if labelled == 0:
        return None
    arms = {arm: {"version": versions[arm], "cells": [c.to_dict() for c in found]} for arm, found in cells.items()}
    return {"status": "measured", "task": task.kind, "labelled": labelled, "arms": arms}


def who() -> str:
    """Who ends a rollout by hand, for its reason: `user@host` (the CLI's and the dashboard's)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
