"""Rollouts between two versions of a model: start one, read how it goes, promote or abort it.

The plan lives in the registry (`registry.rollouts`), so every worker of every running
server picks it up within about a second, as it does an alias move, and it survives
restarts. These verbs only write the plan and read the figures the servers report; the
servers route the traffic and judge the guards themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foretell.api.ledger import ledger_location
from foretell.api.models import get_registry
from foretell.errors import InvalidRollout

if TYPE_CHECKING:
    from foretell.registry import SqliteRegistry
    from foretell.rollout import Guards, Mode, Rollout, Sticky

__all__ = ["rollout_abort", "rollout_promote", "rollout_start", "rollout_status"]


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
    from foretell.monitor.rollout_status import rollout_status as status

    return status(get_registry(home), model, ledger_location(ledger, home=home))


def rollout_promote(model: str, *, home: Path | str | None = None, reason: str | None = None) -> Rollout:
    """End the active rollout of `model` as promoted: its alias moves to the challenger, in one transaction."""
    from foretell.monitor.rollout_status import who

    return _end(model, "promoted", reason or f"promoted by {who()} from the command line", home)


def rollout_abort(model: str, *, home: Path | str | None = None, reason: str | None = None) -> Rollout:
    """End the active rollout of `model` as aborted: the alias stays on the champion."""
    from foretell.monitor.rollout_status import who

    return _end(model, "aborted", reason or f"aborted by {who()} from the command line", home)


def _end(model: str, state: str, reason: str, home: Path | str | None) -> Rollout:
    from foretell.monitor.rollout_status import end_rollout

    return end_rollout(get_registry(home), model, state, reason)


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
