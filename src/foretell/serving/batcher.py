"""`MicroBatcher`: one model's concurrent requests, coalesced into one predict call.

Requests queue up; a single runner task asks the pure `policy.decide` what to do, joins
the chosen requests' frames with `Frame.concat`, calls the model once, and hands each
request back exactly its own rows. What this fixes in the batchers we studied:

- The server owns the lifecycle (`await start()`, `await stop(drain=...)`): nothing starts
  lazily on the first request or stops in `__del__`, so shutdown order is explicit.
- Deadlines and queue-wait figures use a monotonic clock, injectable for tests.
- Every queue is bounded (`Overloaded` at once, with a retry hint), and a request whose
  deadline passed is dropped before the model sees it (`DeadlineExceeded`).
- A model that raises fails its own batch, every request in it with a `PredictionError`
  that names the model and the batch, and the runner goes on with the next batch.

The model runs on the event loop (`run_in_thread=False`, cheapest for fast models) or
in a one-thread executor the batcher owns (`run_in_thread=True`: one call at a time per
model, the loop stays free); docs/serving-batching.md has the measurements behind
`policy.runs_in_thread`.

The waiting requests' bookkeeping is `queue.RequestQueue`'s; the errors a request can end
with, and the observer metrics hang on, are in `outcomes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from foretell import tracing
from foretell.core.columns import Columns
from foretell.core.frame import Frame
from foretell.core.predictor import NO_OPTIONS, Predictions, PredictOptions
from foretell.errors import BatcherClosed, DeadlineExceeded, ForetellError, Overloaded, PredictionError
from foretell.ledger.record import ModelCall
from foretell.serving.outcomes import BatchObserver, _NoObserver
from foretell.serving.policy import BatchPolicy, Flush, Wait, admits, decide, retry_after
from foretell.serving.queue import Batch, BatchNote, Pending, RequestQueue

__all__ = ["BatchObserver", "MicroBatcher", "PredictFn"]

PredictFn = Callable[[Frame, PredictOptions], Predictions]
"""Runs the model once on every row of a frame, with one set of options; usually a bound `Predictor.predict`."""


_State = Literal["new", "running", "stopping", "stopped"]
_EWMA = 0.2  # weight of the newest batch in the running mean of batch time (for retry hints)
#: Longest an idle model under load waits for its last batch's clients to come back, in model
#: calls: long enough to fill its batches, short enough to keep the p99 down (docs/serving-batching.md,
#: "Under load: wait for the clients just answered").
PATIENCE_CALLS = 2.0


class MicroBatcher:
    """Coalesces one model's concurrent requests into batched predict calls.

    - `predict` runs the model on a frame; usually the model's bound `Predictor.predict`.
    - `name` names the model in every error message.
    - `policy` holds the knobs (`BatchPolicy`: batch size, delay, queue bound).
    - `run_in_thread` runs `predict` in a one-thread executor the batcher owns rather
      than on the event loop (see `policy.runs_in_thread` for when that pays).
    - `clock` is the monotonic clock deadlines are read on.
    - `observer` hears batch sizes, queue waits and rejections, for metrics.
    - `alone_inline`, with `run_in_thread`: asked before a batch of one request; when it
      returns True (nothing else is waiting on the event loop), that batch runs inline,
      which saves the thread hop exactly when nobody else could use the loop.
      Whatever runs inline needs the same per-thread settings on the loop's thread.
    - `thread_setup` runs once in the model thread before any batch (ignored inline). Use
      it for per-thread settings such as `lambda: threadpool_limits(1)`: OpenMP and BLAS
      thread limits belong to the thread that sets them, so limits set on the event
      loop's thread never reach the model thread (docs/serving-batching.md, "Thread limits
      are per thread").
    """

    def __init__(
        self,
        predict: PredictFn,
        *,
        name: str = "model",
        policy: BatchPolicy | None = None,
        run_in_thread: bool = False,
        clock: Callable[[], float] = time.monotonic,
        observer: BatchObserver | None = None,
        thread_setup: Callable[[], object] | None = None,
        alone_inline: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self.policy = policy or BatchPolicy()
        self.run_in_thread = run_in_thread
        self._predict = predict
        self._clock = clock
        self._observer: BatchObserver = observer or _NoObserver()
        self._thread_setup = thread_setup
        self._alone_inline = alone_inline
        self._state: _State = "new"
        self._active_policy = self.policy  # while draining: the same knobs, but flush without waiting
        self._queue = RequestQueue()
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._running: asyncio.Future[Predictions] | None = None
        self._running_batch: Batch | None = None
        self._batch_seconds = 0.0
        self._last_batch_requests = 0
        self._expected_rows = 0  # rows likely to be queued soon: the last batch's, back again, plus the queued
        self._idle_since = 0.0
        self._failure: BaseException | None = None

    def __repr__(self) -> str:
        return f"<MicroBatcher {self.name!r} {self._state}, {self._queue.rows} rows queued>"

    # -- gauges for metrics ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Taking requests: started, not stopping, and the runner has not failed."""
        return self._state == "running"

    @property
    def queued_requests(self) -> int:
        return self._queue.requests

    @property
    def queued_rows(self) -> int:
        return self._queue.rows

    @property
    def in_flight_rows(self) -> int:
        """Rows in the model call running now (0 when idle)."""
        return self._running_batch.rows if self._running_batch is not None else 0

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the runner (and the model thread); the server calls this once, before taking requests."""
        if self._state != "new":
            raise RuntimeError(f"the batcher for model {self.name!r} was already started; make a new one")
        if self.run_in_thread:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"foretell-model-{self.name}")
            if self._thread_setup is not None:
                # Submitted, not passed as the executor's initializer: a failure then surfaces here,
                # as itself, rather than as a BrokenThreadPool on the first request. One worker
                # that never retires means the setup holds for every later call.
                try:
                    await asyncio.get_running_loop().run_in_executor(self._executor, self._thread_setup)
                except BaseException:
                    self._executor.shutdown(wait=False)
                    self._executor = None
                    raise
        self._runner = asyncio.get_running_loop().create_task(self._run(), name=f"foretell-batcher-{self.name}")
        self._runner.add_done_callback(self._runner_done)
        self._state = "running"

    async def stop(self, *, drain: bool = True, timeout: float | None = None) -> None:
        """Stop taking requests; with `drain`, run every queued request first, else fail them.

        A model call already running always finishes and answers its requests. If that
        and the drain take longer than `timeout` seconds (or `stop` is cancelled), what
        is left fails with `BatcherClosed` and the model thread is abandoned, not joined.
        """
        if self._state == "new":
            self._state = "stopped"
        if self._state == "stopped" or self._runner is None:
            return
        if self._state == "running":
            self._state = "stopping"
            self._active_policy = dataclasses.replace(self.policy, fill_target=1)
            if not drain:
                self._fail_queued(f"model {self.name!r} is shutting down; the request was not run")
            self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._runner), timeout)
        except TimeoutError:
            self._abort(f"model {self.name!r} did not finish its queued requests within {timeout} s of shutdown")
        except asyncio.CancelledError:
            self._abort(f"model {self.name!r} was shut down before the request ran")
            raise
        except Exception:  # noqa: S110 - the runner's own failure was already given to every waiting request
            pass
        finally:
            self._state = "stopped"
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)

    # -- requests --------------------------------------------------------------------------------

    async def submit(
        self,
        columns: Columns,
        *,
        deadline: float | None = None,
        options: PredictOptions = NO_OPTIONS,
        note: BatchNote | None = None,
    ) -> Predictions:
        """Predict the valid rows of `columns`, batched with whatever else is waiting with the same `options`.

        `deadline` is a time on this batcher's clock (`time.monotonic` unless injected).
        Requests with other options (another top-k `k`) share the queue, its bound and the
        model thread, but never a model call.
        Raises `Overloaded` when the queue is full, `DeadlineExceeded` when the deadline
        passes before the model runs the request, `PredictionError` when the model fails
        on the batch it was in, and `BatcherClosed` when the batcher is not running.
        `note`, when given, is told which model call answered (`BatchNote`): its rows, the call itself
        (its joined inputs and predictions, for the ledger) and where this request's rows start in it.
        """
        if self._state != "running":
            self._observer.rejected("closed")
            raise BatcherClosed(self._closed_reason())
        frame = columns.frame
        rows = frame.n_rows
        now = self._clock()
        if deadline is not None and deadline <= now:
            self._observer.rejected("deadline")
            raise DeadlineExceeded(
                f"the request for model {self.name!r} arrived {(now - deadline) * 1000:.1f} ms past its deadline; "
                "it was not run"
            )
        if rows == 0:
            # Nothing to batch: a Predictor answers an empty frame without touching the model,
            # and a request holding no rows must not wait behind others (or count as queued).
            return self._predict(frame, options)
        if not admits(self.policy, self._queue.rows, rows):
            self._observer.rejected("queue_full")
            wait = retry_after(self.policy, self._queue.rows, self._batch_seconds)
            raise Overloaded(
                f"model {self.name!r} is overloaded: {self._queue.rows} rows are waiting "
                f"(limit {self.policy.max_queue}) and this request brings {rows}; retry after {wait:.0f} s",
                retry_after_s=wait,
            )
        future = asyncio.get_running_loop().create_future()
        pending = Pending(frame, rows, now, deadline, future, options, note=note, trace=tracing.queued())
        self._queue.push(pending)
        self._wake.set()
        try:
            return await pending.future
        except asyncio.CancelledError:
            # The caller gave up (a client disconnect): free its place; the runner skips it.
            self._queue.leave(pending)
            raise

    # -- the runner ------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # cleared before looking: anything that happens later sets it again
            if self._running is not None and self._running.done():
                self._finish_thread_batch()
                await asyncio.sleep(0)  # as inline: the answered callers, and arrivals, go before the next batch
                continue
            now = self._clock()
            self._expire(now)
            if self._state == "stopping" and not self._queue.requests and self._running is None:
                return
            oldest = self._queue.oldest_wait(now)
            decision = decide(self._active_policy, self._queue.rows, oldest, self._running is not None)
            patience = self._patience(now)
            if isinstance(decision, Flush) and patience > 0:
                await self._sleep(patience)
                continue
            if isinstance(decision, Flush):
                batch = self._take(decision.rows, now)
                if self._executor is None or self._runs_alone_inline(batch):
                    self._run_inline(batch)
                    await asyncio.sleep(0)  # let the answered callers, and new arrivals, run before the next batch
                else:
                    self._start_in_thread(batch, self._executor)
                continue
            timeout = decision.seconds if isinstance(decision, Wait) else math.inf
            if self._queue.requests and self._queue.next_expiry < math.inf:
                timeout = min(timeout, self._queue.next_expiry - now)  # wake to fail expired requests on time
            await self._sleep(timeout)

    async def _sleep(self, timeout: float) -> None:
        if timeout == math.inf:
            await self._wake.wait()
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(timeout, 0.0)):
                await self._wake.wait()

    def _patience(self, now: float) -> float:
        """How much longer an idle model lets a batch gather company before it runs it.

        Only under load, when the last batch coalesced several requests: the clients it
        answered are about to send again, and the event loop is busy reading and checking
        their requests, so waiting costs no CPU while a model call has a large fixed cost
        (docs/serving-batching.md, "Under load: wait for the clients just answered"). The
        model waits until the rows it just answered are back on top of those that were queued
        then (at most `max_batch_size`), or until `PATIENCE_CALLS` calls' worth of time (at
        most `max_delay_ms`) has passed since it went idle. A lone client never waits, and
        when load falls the smaller batch that follows lowers the next wait's target.
        """
        if self._last_batch_requests < 2 or self._state != "running" or self._running is not None:
            return 0.0
        if self._queue.rows >= min(self._expected_rows, self._active_policy.max_batch_size):
            return 0.0
        longest = min(PATIENCE_CALLS * self._batch_seconds, self._active_policy.max_delay_ms / 1000.0)
        return max(0.0, longest - (now - self._idle_since))

    def _runs_alone_inline(self, batch: Batch) -> bool:
        return len(batch.requests) == 1 and self._alone_inline is not None and self._alone_inline()

    def _take(self, max_rows: int, now: float) -> Batch:
        """Whole requests in arrival order, up to `max_rows` rows; always at least one request."""
        taken = self._queue.take(max_rows)
        for pending in taken:
            self._observer.queue_wait(now - pending.enqueued_at)
        self._last_batch_requests = len(taken)
        batch = Batch(taken, sum(p.rows for p in taken), now, taken[0].options)
        if tracing.tracer is not None:
            batch.span = tracing.batch_taken([p.trace for p in taken], batch.rows)
        return batch

    def _call(self, batch: Batch) -> Predictions:
        # Runs in the model thread when there is one: the concat is the model's work too.
        with tracing.child(batch.span, "batch formation"):  # a shared no-op `with` when the batch has no span
            batch.frame = Frame.concat([p.frame for p in batch.requests])
        with tracing.child(batch.span, "model call"):
            return self._predict(batch.frame, batch.options)

    def _run_inline(self, batch: Batch) -> None:
        self._running_batch = batch
        self._observer.batch(batch.rows)
        try:
            predictions = self._call(batch)
        except Exception as exc:
            self._fail_batch(batch, exc)
        else:
            self._answer(batch, predictions)
        finally:
            self._running_batch = None

    def _start_in_thread(self, batch: Batch, executor: ThreadPoolExecutor) -> None:
        self._running_batch = batch
        self._observer.batch(batch.rows)
        self._running = asyncio.get_running_loop().run_in_executor(executor, self._call, batch)
        self._running.add_done_callback(lambda _: self._wake.set())

    def _finish_thread_batch(self) -> None:
        assert self._running is not None
        assert self._running_batch is not None
        running, batch = self._running, self._running_batch
        self._running = self._running_batch = None
        failure = running.exception()
        if failure is not None:
            self._fail_batch(batch, failure)
        else:
            self._answer(batch, running.result())

    def _answer(self, batch: Batch, predictions: Predictions) -> None:
        if len(predictions) != batch.rows:
            fault = PredictionError(f"the predict function returned {len(predictions)} rows for {batch.rows}")
            self._fail_batch(batch, fault)
            return
        self._note_batch_time(batch)
        tracing.ended(batch.span)
        offset = 0
        made = None  # the model call, for requests that note it (the ledger): one object for the batch
        for pending in batch.requests:
            part = predictions[offset : offset + pending.rows]
            if not pending.future.done():  # its caller may have given up meanwhile
                note = pending.note
                if note is not None:
                    if made is None:
                        made = ModelCall(batch.frame, predictions) if batch.frame is not None else None
                    note.batch_rows, note.model_call, note.offset = batch.rows, made, offset
                pending.future.set_result(part)
            offset += pending.rows

    def _fail_batch(self, batch: Batch, failure: BaseException) -> None:
        self._note_batch_time(batch)
        tracing.ended(batch.span, failure)
        # The cause of a Predictor's PredictionError is the model's own exception: name that.
        cause = failure.__cause__ if isinstance(failure, PredictionError) and failure.__cause__ else failure
        reason = str(cause) if isinstance(cause, ForetellError) else f"{type(cause).__name__}: {cause}"
        message = (
            f"model {self.name!r} failed on a batch of {batch.rows} rows from {len(batch.requests)} requests "
            f"(every request in the batch failed): {reason}"
        )
        for pending in batch.requests:
            if not pending.future.done():
                error = PredictionError(message)  # one instance per caller: raising it adds to its traceback
                error.__cause__ = failure
                pending.future.set_exception(error)

    def _note_batch_time(self, batch: Batch) -> None:
        self._idle_since = self._clock()
        self._expected_rows = batch.rows + self._queue.rows
        seconds = max(self._idle_since - batch.started_at, 0.0)
        previous = self._batch_seconds
        self._batch_seconds = seconds if not previous else (1 - _EWMA) * previous + _EWMA * seconds

    # -- leaving the queue without running -------------------------------------------------------

    def _expire(self, now: float) -> None:
        """Fail every queued request whose deadline has passed, before the model can see it."""
        for pending in self._queue.expire(now):
            self._observer.rejected("deadline")
            if not pending.future.done():
                waited = (now - pending.enqueued_at) * 1000
                pending.future.set_exception(
                    DeadlineExceeded(
                        f"the request for model {self.name!r} waited {waited:.1f} ms in the queue and its "
                        "deadline passed before the model could run it; it was not run"
                    )
                )

    def _fail_queued(self, message: str) -> None:
        for pending in self._queue.clear():
            self._observer.rejected("closed")
            if not pending.future.done():
                pending.future.set_exception(BatcherClosed(message))

    def _abort(self, message: str) -> None:
        """Give up on the runner and the running model call; everyone still waiting hears why."""
        if self._runner is not None:
            self._runner.cancel()
        self._fail_queued(message)
        if self._running is not None and self._running_batch is not None:
            self._running.cancel()  # the thread runs on, but its result goes nowhere
            for pending in self._running_batch.requests:
                if not pending.future.done():
                    pending.future.set_exception(BatcherClosed(message))
            self._running = self._running_batch = None

    def _runner_done(self, runner: asyncio.Task[None]) -> None:
        if runner.cancelled() or runner.exception() is None:
            return
        # A bug in the runner must not leave callers waiting forever: fail them, refuse new ones.
        self._failure = runner.exception()
        self._state = "stopping" if self._state == "running" else self._state
        self._abort(f"the batcher for model {self.name!r} stopped on an internal error: {self._failure!r}")

    def _closed_reason(self) -> str:
        if self._state == "new":
            return f"the batcher for model {self.name!r} has not been started; the server starts it before serving"
        if self._failure is not None:
            return f"the batcher for model {self.name!r} stopped on an internal error: {self._failure!r}"
        return f"model {self.name!r} is shutting down and takes no new requests"
