"""Rollouts kept in the registry's database: the plan, every worker's figures, and each decision.

In the registry because a rollout is a statement about its versions and its alias, and
because promoting one is moving that alias: `end` marks the rollout promoted and points
the alias at the challenger in one transaction, so nobody ever sees one without the
other. Ending is compare-and-set (`WHERE state = 'active'`): when two workers' guards
decide at once, one decision wins and the other learns it came second. At most one
rollout per model is active (a partial unique index says so to SQLite itself).

Each serving worker writes what it has counted (`report`) about once a second under its
own name; `stats` sums them, which is what `rollout status` shows and the guards judge.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from foretell.database import Database
from foretell.errors import InvalidRollout
from foretell.rollout import Rollout, RolloutStats, State

__all__ = ["ROLLOUTS_SCHEMA", "RolloutStore"]

ROLLOUTS_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS rollouts (
        id         TEXT PRIMARY KEY,
        model      TEXT NOT NULL,
        state      TEXT NOT NULL,  -- active, promoted, aborted
        started_at TEXT NOT NULL,
        ended_at   TEXT,
        plan       TEXT NOT NULL   -- Rollout.to_dict() as JSON
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS one_active_rollout ON rollouts (model) WHERE state = 'active'",
    "CREATE INDEX IF NOT EXISTS rollouts_by_model ON rollouts (model, started_at)",
    """CREATE TABLE IF NOT EXISTS rollout_stats (
        rollout_id TEXT NOT NULL,
        worker     TEXT NOT NULL,  -- host:pid of the serving process, or a batch job's id
        updated_at TEXT NOT NULL,
        stats      TEXT NOT NULL,  -- RolloutStats.to_dict() as JSON
        PRIMARY KEY (rollout_id, worker)
    )""",
    """CREATE TABLE IF NOT EXISTS rollout_events (
        rollout_id TEXT NOT NULL,
        at         TEXT NOT NULL,
        action     TEXT NOT NULL,  -- started, promoted, aborted, blocked
        message    TEXT NOT NULL,
        figures    TEXT NOT NULL
    )""",
)

#: Moves an alias inside the caller's transaction: (connection, model, alias, version).
AliasMover = Callable[[sqlite3.Connection, str, str, int], None]
#: Checks that a version exists inside the caller's transaction (raises when it does not).
VersionCheck = Callable[[sqlite3.Connection, str, int], None]


class RolloutStore:
    """The rollouts of one registry, in its own database file."""

    def __init__(self, db: Database, now: Callable[[], str], move_alias: AliasMover, check_version: VersionCheck):
        self._db = db
        self._now = now
        self._move_alias = move_alias
        self._check_version = check_version

    # -- the plan ----------------------------------------------------------------------------------

    def start(self, rollout: Rollout) -> Rollout:
        """Record `rollout` as its model's active one; refused when one is active already."""
        with self._db.write() as conn:
            for version in (rollout.champion, rollout.challenger):
                self._check_version(conn, rollout.model, version)
            running = self._active(conn, rollout.model)
            if running is not None:
                raise InvalidRollout(
                    f"model {rollout.model!r} already has an active rollout ({running.mode} of version "
                    f"{running.challenger}, id {running.id}); promote or abort it first"
                )
            started = Rollout.from_dict({**rollout.to_dict(), "started_at": rollout.started_at or self._now()})
            conn.execute(
                "INSERT INTO rollouts (id, model, state, started_at, ended_at, plan) VALUES (?, ?, ?, ?, NULL, ?)",
                (started.id, started.model, "active", started.started_at, json.dumps(started.to_dict())),
            )
            self._log(conn, started.id, "started", _started_message(started), {})
        return started

    def active(self, model: str) -> Rollout | None:
        with self._db.read() as conn:
            return self._active(conn, model)

    def active_all(self) -> dict[str, Rollout]:
        """Every model's active rollout (one query for a server's watcher, whatever it serves)."""
        with self._db.read() as conn:
            rows = conn.execute("SELECT plan FROM rollouts WHERE state = 'active'").fetchall()
        found = [Rollout.from_dict(json.loads(row[0])) for row in rows]
        return {r.model: r for r in found}

    def latest(self, model: str) -> Rollout | None:
        """The active rollout of `model`, else the last one that ended."""
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT plan FROM rollouts WHERE model = ? ORDER BY state = 'active' DESC, started_at DESC, rowid DESC "
                "LIMIT 1",
                (model,),
            ).fetchone()
        return None if row is None else Rollout.from_dict(json.loads(row[0]))

    def history(self, model: str) -> list[Rollout]:
        with self._db.read() as conn:
            rows = conn.execute("SELECT plan FROM rollouts WHERE model = ? ORDER BY started_at, rowid", (model,))
            return [Rollout.from_dict(json.loads(row[0])) for row in rows.fetchall()]

    def end(self, rollout: Rollout, state: State, reason: str, figures: dict[str, Any] | None = None) -> Rollout | None:
        """End `rollout` (promoting moves its alias to the challenger, in the same transaction).

        None when it had already ended: another worker's guards, or a person, got there first.
        """
        with self._db.write() as conn:
            row = conn.execute("SELECT state FROM rollouts WHERE id = ?", (rollout.id,)).fetchone()
            if row is None or row[0] != "active":
                return None
            if state == "promoted":
                self._check_version(conn, rollout.model, rollout.challenger)
                self._move_alias(conn, rollout.model, rollout.alias, rollout.challenger)
            ended = rollout.ended(state, reason, self._now())
            conn.execute(
                "UPDATE rollouts SET state = ?, ended_at = ?, plan = ? WHERE id = ? AND state = 'active'",
                (state, ended.ended_at, json.dumps(ended.to_dict()), rollout.id),
            )
            self._log(conn, rollout.id, state, reason, figures or {})
        return ended

    # -- figures and decisions ---------------------------------------------------------------------

    def report(self, rollout_id: str, worker: str, stats: RolloutStats) -> None:
        """Replace what `worker` has counted for the rollout."""
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO rollout_stats (rollout_id, worker, updated_at, stats) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (rollout_id, worker) DO UPDATE "
                "SET updated_at = excluded.updated_at, stats = excluded.stats",
                (rollout_id, worker, self._now(), json.dumps(stats.to_dict())),
            )

    def stats(self, rollout_id: str) -> RolloutStats:
        """Every worker's figures for the rollout, summed."""
        with self._db.read() as conn:
            rows = conn.execute("SELECT stats FROM rollout_stats WHERE rollout_id = ?", (rollout_id,)).fetchall()
        return RolloutStats.total(RolloutStats.from_dict(json.loads(row[0])) for row in rows)

    def workers(self, rollout_id: str) -> list[dict[str, Any]]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT worker, updated_at FROM rollout_stats WHERE rollout_id = ? ORDER BY worker", (rollout_id,)
            ).fetchall()
        return [{"worker": row[0], "updated_at": row[1]} for row in rows]

    def log(self, rollout_id: str, action: str, message: str, figures: dict[str, Any] | None = None) -> None:
        with self._db.write() as conn:
            self._log(conn, rollout_id, action, message, figures or {})

    def events(self, rollout_id: str) -> list[dict[str, Any]]:
        """Every decision on the rollout, oldest first, with the figures it was taken on."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT at, action, message, figures FROM rollout_events WHERE rollout_id = ? ORDER BY rowid",
                (rollout_id,),
            ).fetchall()
        return [{"at": r[0], "action": r[1], "message": r[2], "figures": json.loads(r[3])} for r in rows]

    # -- inside a transaction ----------------------------------------------------------------------

    def _active(self, conn: sqlite3.Connection, model: str) -> Rollout | None:
        row = conn.execute("SELECT plan FROM rollouts WHERE model = ? AND state = 'active'", (model,)).fetchone()
        return None if row is None else Rollout.from_dict(json.loads(row[0]))

    def _log(self, conn: sqlite3.Connection, rollout_id: str, action: str, message: str, figures: Any) -> None:
        conn.execute(
            "INSERT INTO rollout_events (rollout_id, at, action, message, figures) VALUES (?, ?, ?, ?, ?)",
            (rollout_id, self._now(), action, message, json.dumps(figures, default=str)),
        )


def _started_message(rollout: Rollout) -> str:
    share = f"{rollout.percent:g}%"
    how = "scores" if rollout.mode == "shadow" else "answers"
    return (
        f"{rollout.mode}: version {rollout.challenger} {how} {share} of {rollout.model}'s traffic "
        f"(champion: version {rollout.champion}, sticky by {rollout.sticky}{', auto-promote' if rollout.auto else ''})"
    )
