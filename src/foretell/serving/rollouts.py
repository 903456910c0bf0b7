"""`RolloutKeeper`: a server's side of the rollouts kept in the registry.

Every tick of the reload watcher (about a second) it reads the active rollouts (one
query) and, for each served model:

- **follows** the plan: a rollout whose champion this server serves gets its challenger
  loaded, warmed and given its own batcher before it takes any traffic; one that ended
  (promoted, aborted, or replaced) has its challenger stopped after its comparisons in
  flight finish. A promotion's alias move reaches the champion's slot through the
  ordinary reload, as any alias move does;
- **reports** what this worker has counted since the last tick to the registry, under
  `<host>:<pid>`, so `rollout status` and every other worker see the sum;
- **judges** the guards on that sum (`foretell.rollout.judge`): a broken health guard
  aborts the rollout at once, a rollout whose guards all hold after `min_requests` is
  promoted when it is `--auto`, and a change in what blocks it is logged with its figures.

Ending is compare-and-set in the registry, so when several workers judge at once one
decision is taken, once. Nothing here runs on the request path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import TYPE_CHECKING

from foretell.registry.rollouts import RolloutStore
from foretell.rollout import Rollout, judge
from foretell.serving.challenger import Challenger

if TYPE_CHECKING:
    from foretell.serving.runtime import ModelSlot, Runtime

__all__ = ["RolloutKeeper", "worker_name"]

log = logging.getLogger("foretell.rollout")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class RolloutKeeper:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.worker = worker_name()

    @property
    def _store(self) -> RolloutStore:
        return self.runtime.registry.rollouts

    async def follow(self) -> None:
        """Bring every slot's challenger in line with the registry, then report and judge."""
        active: dict[str, Rollout] = await asyncio.to_thread(self._store.active_all)
        for slot in list(self.runtime.slots.values()):
            rollout = active.get(slot.name)
            if rollout is not None and rollout.champion != slot.version:
                rollout = None  # this server serves another version (a pin, or the alias moved): not its rollout
            current = slot.challenger
            if current is not None and (rollout is None or rollout.id != current.rollout.id):
                await self._report(current)
                await self._detach(slot, "the rollout ended" if rollout is None else "another rollout began")
            if rollout is not None and slot.challenger is None:
                await self._attach(slot, rollout)
            if slot.challenger is not None:
                await self._report(slot.challenger)
                await self._judge(slot, slot.challenger)

    async def stop(self) -> None:
        for slot in self.runtime.slots.values():
            if slot.challenger is not None:
                await self._report(slot.challenger)
                await self._detach(slot, "the server is stopping")

    # -- the challenger's lifetime -----------------------------------------------------------------

    async def _attach(self, slot: ModelSlot, rollout: Rollout) -> None:
        uri = f"{slot.name}/{rollout.challenger}"
        try:
            model = await asyncio.to_thread(self.runtime.load_and_warm, uri)
        except Exception as exc:  # a challenger that cannot load must not take the champion down
            reason = f"the challenger {uri} could not be loaded: {type(exc).__name__}: {exc}"
            log.warning("aborting the rollout of %s: %s", slot.name, reason)
            await asyncio.to_thread(self._store.end, rollout, "aborted", reason, {"worker": self.worker})
            return
        batcher = await self.runtime.start_batcher(model, challenger=True)
        slot.challenger = Challenger(rollout, model, batcher)
        log.info(
            "rollout %s of %s: version %s %s %g%% of the traffic beside version %s",
            rollout.id,
            slot.name,
            rollout.challenger,
            "shadows" if rollout.mode == "shadow" else "answers",
            rollout.percent,
            slot.version,
        )

    async def _detach(self, slot: ModelSlot, why: str) -> None:
        challenger = slot.challenger
        if challenger is None:
            return
        slot.challenger = None  # new requests go to the champion alone from here
        await challenger.stop()
        log.info(
            "rollout %s of %s: version %s detached (%s)", challenger.rollout.id, slot.name, challenger.version, why
        )

    # -- figures and verdicts ----------------------------------------------------------------------

    async def _report(self, challenger: Challenger) -> None:
        figures = challenger.stats.to_dict()
        if figures == challenger.reported:
            return
        await asyncio.to_thread(self._store.report, challenger.rollout.id, self.worker, challenger.stats)
        challenger.reported = figures

    async def _judge(self, slot: ModelSlot, challenger: Challenger) -> None:
        rollout = challenger.rollout
        total = await asyncio.to_thread(self._store.stats, rollout.id)
        verdict = judge(total, rollout.guards, auto=rollout.auto)
        figures = {**verdict.figures, "worker": self.worker}
        if verdict.action == "abort":
            ended = await asyncio.to_thread(self._store.end, rollout, "aborted", verdict.reason, figures)
            if ended is not None:
                log.warning("rollout %s of %s aborted: %s", rollout.id, slot.name, verdict.reason)
            await self._detach(slot, "aborted by its guards")
        elif verdict.action == "promote":
            ended = await asyncio.to_thread(
                self._store.end, rollout, "promoted", f"auto-promoted: {verdict.reason}", figures
            )
            if ended is not None:
                log.info(
                    "rollout %s of %s promoted: %s@%s → version %s (%s)",
                    rollout.id,
                    slot.name,
                    slot.name,
                    rollout.alias,
                    rollout.challenger,
                    verdict.reason,
                )
        elif verdict.reasons != challenger.verdict and any("blocked" in r for r in verdict.reasons):
            await asyncio.to_thread(self._store.log, rollout.id, "blocked", verdict.reason, figures)
        challenger.verdict = verdict.reasons
