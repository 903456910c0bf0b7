"""`Rollout`: what a rollout between two versions of a model is, as the registry keeps it.

A rollout names its model, the champion (the version the alias pointed at when it
began), the challenger, how traffic meets the challenger (`shadow`: it scores a share of
requests off the response path; `canary`: it answers a share), what a request is assigned
by (`sticky`), its guards, whether the guards may promote it (`auto`), and the alias a
promotion moves. Its `id` salts the assignment, so each rollout draws its own share of
keys, and the same key gets the same arm for as long as the rollout lasts.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from foretell.errors import InvalidRollout
from foretell.rollout.guards import Guards

__all__ = ["MODES", "STICKY", "Mode", "Rollout", "State", "Sticky", "check_percent", "new_rollout", "staged_store_name"]

Mode = Literal["shadow", "canary"]
Sticky = Literal["key", "request"]
State = Literal["active", "promoted", "aborted"]
MODES: tuple[Mode, ...] = ("shadow", "canary")
STICKY: tuple[Sticky, ...] = ("key", "request")


@dataclass(frozen=True, slots=True)
class Rollout:
    id: str
    model: str
    champion: int
    challenger: int
    mode: Mode
    percent: float
    """Shadow: the share of requests the challenger also scores; canary: the share it answers."""
    sticky: Sticky = "key"
    """`key`: by entity key when the request has one (else its id, else its input); `request`: never by key."""
    guards: Guards = field(default_factory=Guards)
    auto: bool = False
    alias: str = "production"
    state: State = "active"
    started_at: str = ""
    ended_at: str | None = None
    reason: str | None = None
    """Why it ended: who promoted or aborted it, or which guard did."""

    @property
    def active(self) -> bool:
        return self.state == "active"

    def ended(self, state: State, reason: str, at: str) -> Rollout:
        return replace(self, state=state, reason=reason, ended_at=at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "champion": self.champion,
            "challenger": self.challenger,
            "mode": self.mode,
            "percent": self.percent,
            "sticky": self.sticky,
            "guards": self.guards.to_dict(),
            "auto": self.auto,
            "alias": self.alias,
            "state": self.state,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rollout:
        return cls(
            id=str(data["id"]),
            model=str(data["model"]),
            champion=int(data["champion"]),
            challenger=int(data["challenger"]),
            mode=check_mode(data["mode"]),
            percent=float(data["percent"]),
            sticky=check_sticky(data.get("sticky", "key")),
            guards=Guards.from_dict(data.get("guards", {})),
            auto=bool(data.get("auto", False)),
            alias=str(data.get("alias", "production")),
            state=data.get("state", "active"),
            started_at=str(data.get("started_at", "")),
            ended_at=data.get("ended_at"),
            reason=data.get("reason"),
        )


def check_mode(mode: object) -> Mode:
    if mode not in MODES:
        raise InvalidRollout(f"a rollout's mode is shadow or canary, got {mode!r}")
    return mode


def check_sticky(sticky: object) -> Sticky:
    if sticky not in STICKY:
        raise InvalidRollout(f"--sticky is key or request, got {sticky!r}")
    return sticky


def check_percent(mode: Mode, percent: float) -> float:
    """Shadow: 0 < PCT ≤ 100; canary: 0 < PCT < 100 (a canary of 100 % is a promotion)."""
    top = 100.0 if mode == "shadow" else 99.99
    if not (isinstance(percent, int | float) and math.isfinite(percent) and 0 < percent <= top):
        rule = "0 < PCT ≤ 100" if mode == "shadow" else "0 < PCT < 100 (100 % is `rollout promote`)"
        raise InvalidRollout(f"--{mode} PCT must be a percentage with {rule}, got {percent!r}")
    return float(percent)


def new_rollout(
    model: str,
    champion: int,
    challenger: int,
    mode: Mode,
    percent: float,
    *,
    sticky: Sticky = "key",
    guards: Guards | None = None,
    auto: bool = False,
    alias: str = "production",
    started_at: str = "",
) -> Rollout:
    """A checked, new, active rollout with a fresh id."""
    mode = check_mode(mode)
    if champion == challenger:
        raise InvalidRollout(
            f"the challenger is version {challenger}, which {model}@{alias} already serves; "
            "a rollout needs another version"
        )
    return Rollout(
        id=secrets.token_hex(6),
        model=model,
        champion=champion,
        challenger=challenger,
        mode=mode,
        percent=check_percent(mode, percent),
        sticky=check_sticky(sticky),
        guards=guards or Guards(),
        auto=auto,
        alias=alias,
        started_at=started_at,
    )


def staged_store_name(model: str, version: int) -> str:
    """Where a challenger's staged generation is kept in the prediction store, beside `model`'s own.

    `churn/4`: a slash cannot be in a model name, so no model's predictions are ever there.
    """
    return f"{model}/{int(version)}"
