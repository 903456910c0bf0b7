"""`Challenger`: a rollout's challenger as one server holds it, beside the champion's slot.

Its own loaded version and micro-batcher (so its queue, thread and failures are its own),
the rollout it serves, what this worker has counted for it (`RolloutStats`), and the
comparisons still running off the response path (bounded: past `MAX_PENDING_COMPARISONS`
a comparison is dropped and counted, never waited for).
"""

from __future__ import annotations

import asyncio
from typing import Any

from foretell.core.model import Model
from foretell.rollout import Rollout, RolloutStats
from foretell.serving.batcher import MicroBatcher

__all__ = ["MAX_PENDING_COMPARISONS", "Challenger"]

#: Comparisons in flight per rollout. Each holds one request's rows and predictions until the
#: other version has scored them; past this many the server is behind, and a comparison is
#: dropped rather than let memory grow or the champion's answers wait.
MAX_PENDING_COMPARISONS = 512


class Challenger:
    __slots__ = ("_reuses", "batcher", "model", "reported", "rollout", "stats", "tasks", "verdict")

    def __init__(self, rollout: Rollout, model: Model, batcher: MicroBatcher) -> None:
        self.rollout = rollout
        self.model = model
        self.batcher = batcher
        self.stats = RolloutStats()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.reported: dict[str, Any] | None = None
        """The stats as last written to the registry (a worker writes only when they changed)."""
        self.verdict: tuple[str, ...] = ()
        """The guards' last reasons, so a decision is logged when it changes, not every second."""
        self._reuses: tuple[Model | None, bool] = (None, False)

    @property
    def version(self) -> int:
        return self.model.info.version

    @property
    def full(self) -> bool:
        return len(self.tasks) >= MAX_PENDING_COMPARISONS

    def reuses_columns_of(self, champion: Model) -> bool:
        """Whether rows the champion validated are valid for the challenger as they are (same signature)."""
        seen, same = self._reuses
        if seen is not champion:
            same = champion.signature == self.model.signature
            self._reuses = (champion, same)
        return same

    def track(self, task: asyncio.Task[Any]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def stop(self) -> None:
        """Let the comparisons in flight finish, then stop the challenger's batcher (its queue drains first)."""
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=5.0)
        for task in list(self.tasks):
            task.cancel()
        await self.batcher.stop(drain=True)
