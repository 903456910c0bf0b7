"""Rollouts between two versions of a model: start one, read how it goes, promote or abort it.

The plan lives in the registry (`registry.rollouts`), so every worker of every running
server picks it up within about a second, as it does an alias move, and it survives
restarts. These verbs only write the plan and read the figures the servers report; the
servers route the traffic and judge the guards themselves.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foretell.api.ledger import ledger_location
from foretell.api.models import get_registry
from foretell.errors import ForetellError, InvalidRollout

if TYPE_CHECKING:
    from foretell.core.schema import Signature
    from foretell.registry import SqliteRegistry
    from foretell.rollout import Guards, Mode, Rollout, RolloutStats, Sticky

__all__ = ["rollout_abort", "rollout_promote", "rollout_start", "rollout_status"]

NO_LABELS = "no labels yet"


def rollout_start(
    model: str,
    challenger: str | int,
    *,
    mode: Mode,
    percent: float,
    sticky: Sticky = "key",
    guards: Sequence[str] | Guards = (),
    auto: bool = False,
    alias: str = "production",
    home: Path | str | None = None,
) -> Rollout:
    """Start a rollout of `challenger` against the version `model@alias` points at now.

    `challenger` is a version number of `model`, an alias of it, or a URI naming one of its
    versions; it is resolved once, here, and kept as a version number. `guards` are
    `NAME=VALUE` strings over the defaults (see `foretell.rollout.Guards`).
    """
    from foretell.rollout import Guards, new_rollout, parse_guards

    registry = get_registry(home)
    champion = registry.get(f"{model}@{alias}").version
    if isinstance(guards, str):  # one NAME=VALUE, not its characters
        guards = [guards]
    chosen = guards if isinstance(guards, Guards) else parse_guards(guards)
    plan = new_rollout(
        model,
        champion,
        _version_of(registry, model, challenger),
        mode,
        percent,
        sticky=sticky,
        guards=chosen,
        auto=auto,
        alias=alias,
    )
    return registry.rollouts.start(plan)


def rollout_status(model: str, *, home: Path | str | None = None, ledger: str | Path | None = None) -> dict[str, Any]:
    """The active rollout of `model` (else the last one): plan, figures, guards, verdict, workers, events, quality."""
    from foretell.rollout import judge

    registry = get_registry(home)
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
        "quality": _quality(registry, rollout, ledger_location(ledger, home=home)),
    }


def rollout_promote(model: str, *, home: Path | str | None = None, reason: str | None = None) -> Rollout:
    """End the active rollout of `model` as promoted: its alias moves to the challenger, in one transaction."""
    return _end(model, "promoted", reason or f"promoted by {_who()} from the command line", home)


def rollout_abort(model: str, *, home: Path | str | None = None, reason: str | None = None) -> Rollout:
    """End the active rollout of `model` as aborted: the alias stays on the champion."""
    return _end(model, "aborted", reason or f"aborted by {_who()} from the command line", home)


def _end(model: str, state: str, reason: str, home: Path | str | None) -> Rollout:
    registry = get_registry(home)
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


def _latest(registry: SqliteRegistry, model: str) -> Rollout:
    registry.list_versions(model)
    rollout = registry.rollouts.latest(model)
    if rollout is None:
        raise InvalidRollout(
            f"model {model!r} has had no rollout; start one with `foretell rollout start {model} --challenger VERSION`"
        )
    return rollout


def _no_active(registry: SqliteRegistry, model: str) -> str:
    last = registry.rollouts.latest(model)
    if last is None:
        return f"model {model!r} has no active rollout (it never had one)"
    return f"model {model!r} has no active rollout (the last one, {last.id}, was {last.state}: {last.reason})"


def _version_of(registry: SqliteRegistry, model: str, challenger: str | int) -> int:
    """A version number of `model`: `4`, an alias (`staging`), or a URI (`churn/4`, `models:/churn@staging`)."""
    text = str(challenger).strip()
    if not text:
        raise InvalidRollout("--challenger is a version number, an alias or a URI of the model, got ''")
    if text.isdigit():
        uri = f"{model}/{text}"
    elif "/" in text or "@" in text:
        uri = text
    else:
        uri = f"{model}@{text}"
    info = registry.get(uri)
    if info.name != model:
        raise InvalidRollout(f"--challenger {text!r} is a version of {info.name}, not of {model}")
    return info.version


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


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
