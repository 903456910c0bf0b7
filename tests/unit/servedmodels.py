"""Real registered models, and the real serving stack over them, for the serving, http and hybrid unit tests.

The classes below are python-flavor models: `register_models` registers them in a real
registry home, and `Runtime` loads them from it (importing this module by name, which
tests/unit/conftest.py puts on the path), so a test and the models it serves share the
class-level `Gate`: "while the model runs" is a state a test sets up, not a race.

`Stack` is one server's data plane built from that home: a `Runtime`, the
`InferenceService` over it, a `HybridService` over that with SQLite stores in the test's
folder, and the ASGI app; `serving(...)` starts it through the app's own lifespan and
gives an httpx client that drives the app in process.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa

import foretell
from foretell.core.schema import Feature, Output, Signature
from foretell.http.app import ServerOptions, create_app
from foretell.hybrid import HybridService
from foretell.registry import open_registry
from foretell.serving.policy import BatchPolicy
from foretell.serving.runtime import Runtime
from foretell.serving.service import InferenceService
from foretell.store import SqliteStore
from foretell.store.entities import Interactions
from foretell.store.entities_sqlite import SqliteEntityStore

POISON = -1.0
"""A value of `a` that makes `Sums` raise, as a model with a bug would."""


class Sums:
    """score = a + b; raises on a = -1."""

    signature = Signature((Feature("a"), Feature("b")), (Output("score", "score"),))

    @classmethod
    def load(cls, path: Path) -> Sums:
        return cls()

    def predict(self, columns: Any) -> np.ndarray:
        a = np.asarray(columns["a"], dtype=np.float64)
        if bool(np.any(a == POISON)):
            raise ValueError("a = -1 broke the model")
        return a + np.asarray(columns["b"], dtype=np.float64)


class Tiers:
    """score = a, times 10 for the 'pro' tier: a second model reading a features table, stricter than `Sums`."""

    signature = Signature(
        (Feature("a"), Feature("tier", "category", categories=("basic", "pro"))), (Output("score", "score"),)
    )

    @classmethod
    def load(cls, path: Path) -> Tiers:
        return cls()

    def predict(self, columns: Any) -> np.ndarray:
        a = np.asarray(columns["a"], dtype=np.float64)
        codes = np.asarray(columns["tier"])  # category codes, in the signature's order
        return np.where(codes == 1, a * 10, a)


class TopK:
    """A recommender: user u's top k items are u*10, u*10+1, ...; scores 1, 1/2, 1/3, ..."""

    signature = Signature(
        (Feature("user_id", "int64"),),
        (
            Output("items", "topk_items", "int64", shape=(3,)),
            Output("scores", "topk_scores", "float64", shape=(3,)),
        ),
    )

    @classmethod
    def load(cls, path: Path) -> TopK:
        return cls()

    def predict(self, columns: Any, k: int = 3) -> dict[str, np.ndarray]:
        users = np.asarray(columns["user_id"], dtype=np.int64)
        items = users[:, None] * 10 + np.arange(k)[None, :]
        return {"items": items, "scores": np.broadcast_to(1 / (1 + np.arange(k)), items.shape).copy()}


class Gate:
    """Holds `Gated` mid-call: `hold()`, wait for `entered`, then `release()`."""

    opened = threading.Event()
    entered = threading.Event()
    opened.set()

    @classmethod
    def hold(cls) -> None:
        cls.entered.clear()
        cls.opened.clear()

    @classmethod
    def release(cls) -> None:
        cls.opened.set()


class Gated(Sums):
    """`Sums` that waits at the `Gate`; slower than 5 ms, so the server always runs it on its own thread."""

    @classmethod
    def load(cls, path: Path) -> Gated:
        Gate.release()
        return cls()

    def predict(self, columns: Any) -> np.ndarray:
        time.sleep(0.006)  # never inline on the event loop, where a closed gate would stop the loop
        Gate.entered.set()
        assert Gate.opened.wait(timeout=10), "a test never opened the gate"
        return super().predict(columns)


class Shifted(Sums):
    """`Sums` plus one: a challenger that differs from `Sums` by exactly 1 on every row."""

    @classmethod
    def load(cls, path: Path) -> Shifted:
        return cls()

    def predict(self, columns: Any) -> np.ndarray:
        return super().predict(columns) + 1.0


class Failing(Sums):
    """A challenger that fails every call but the server's warm-up (whose row is all zeros)."""

    @classmethod
    def load(cls, path: Path) -> Failing:
        return cls()

    def predict(self, columns: Any) -> np.ndarray:
        if bool(np.any(np.asarray(columns["a"], dtype=np.float64))):
            raise RuntimeError("the failing challenger failed")
        return super().predict(columns)


MODELS: dict[str, type] = {"sums": Sums, "tiers": Tiers, "topk": TopK, "gated": Gated}


def register_models(home: Path, scratch: Path) -> None:
    """Register every model above (version 1 each) in the registry in `home`."""
    for name, cls in MODELS.items():
        folder = scratch / name
        folder.mkdir(parents=True)
        (folder / "README").write_text(f"the {name} test model keeps nothing on disk\n")
        foretell.register(
            name,
            folder,
            flavor="python",
            signature=cls.signature,  # type: ignore[attr-defined]
            flavor_options={"class": f"servedmodels:{cls.__name__}"},
            compile=False,
            home=home,
        )


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Clock:
    """A wall clock a test moves by hand (the hybrid service's `clock`)."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def ago(self, **delta: float) -> str:
        return stamp(self.now - timedelta(**delta))


class Stack:
    """One server's data plane over the registry in `home`; its stores (made when first used) in `folder`."""

    def __init__(
        self,
        home: Path,
        folder: Path,
        models: tuple[str, ...] = ("sums",),
        *,
        policy: BatchPolicy | None = None,
        max_age: Mapping[str, float] | None = None,
        default_max_age: float = 3600.0,
    ) -> None:
        self.folder = folder
        self.runtime = Runtime(open_registry(home), list(models), policy=policy, reload_seconds=0)
        self.inference = InferenceService(self.runtime)
        self.clock = Clock()
        self.max_age = max_age
        self.default_max_age = default_max_age

    @cached_property
    def predictions(self) -> SqliteStore:
        return SqliteStore(self.folder / "store.db")

    @cached_property
    def entities(self) -> SqliteEntityStore:
        return SqliteEntityStore(self.folder / "entities.db")

    @cached_property
    def hybrid(self) -> HybridService:
        return HybridService(
            self.inference,
            self.predictions,
            self.entities,
            max_age=self.max_age,
            default_max_age=self.default_max_age,
            clock=self.clock,
        )

    def app(self, options: ServerOptions | None = None, *, hybrid: bool = True) -> Any:
        return create_app(self.inference, options, self.hybrid if hybrid else None)

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of this server's metrics (None when never recorded)."""
        value = self.runtime.metrics.registry.get_sample_value(name, labels)
        return None if value is None else float(value)


class Lifespan:
    """Runs an ASGI app's startup and shutdown through the lifespan protocol, as a server would."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Future[None] | None = None

    async def __aenter__(self) -> Lifespan:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self.task = asyncio.ensure_future(self.app(scope, self.to_app.get, self.from_app.put))
        await self.to_app.put({"type": "lifespan.startup"})
        message = await self.from_app.get()
        assert message["type"] == "lifespan.startup.complete", message
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.to_app.put({"type": "lifespan.shutdown"})
        message = await self.from_app.get()
        assert message["type"] == "lifespan.shutdown.complete", message
        assert self.task is not None
        await self.task


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app started by its lifespan, and a client that sends it requests in process."""
    async with Lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield client


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=20))  # a hung request fails the test, not the suite


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.001)


@asynccontextmanager
async def started(service: InferenceService) -> AsyncIterator[InferenceService]:
    """The service's models loaded and their batchers running, as a server's lifespan does."""
    await service.start()
    try:
        yield service
    finally:
        await service.stop(drain=True)


# -- hybrid: entity tables and stored predictions --------------------------------------------------------

MINUTE = 60.0
THINGS = pa.table(
    {
        "id": [f"T-{i}" for i in range(5)],
        "a": [0.0, 1.0, 2.0, 3.0, None],
        "b": [0.0, 10.0, 20.0, 30.0, 40.0],
        "tier": ["basic", "pro", "basic", "pro", "basic"],
    }
)
"""Features of things, read by `sums` and `tiers`; T-4's `a` is missing, which neither model accepts."""
RATINGS = pa.table({"user_id": [1, 1, 2], "movie_id": [101, 102, 201], "rating": [5.0, 3.0, 4.0]})
"""Users' ratings, read by `topk`."""


def load_tables(path: Path) -> Path:
    """An entity store at `path` with `things` (feeding sums and tiers) and `users` (feeding topk)."""
    entities, loaded = SqliteEntityStore(path), Clock().ago(hours=1)
    entities.load_features("things", "id", THINGS, models=["sums", "tiers"], at=loaded)
    entities.load_interactions(
        "users", "user_id", RATINGS, Interactions("ratings", "movie_id", "rating"), models=["topk"], at=loaded
    )
    return path


def hybrid_stack(
    models_home: Path,
    folder: Path,
    tables: Path,
    models: tuple[str, ...] = ("sums", "tiers", "topk"),
    *,
    policy: BatchPolicy | None = None,
) -> Stack:
    """A stack whose entity store is a copy of `tables`; `sums` may be 30 minutes old, the others an hour."""
    with sqlite3.connect(tables) as source, sqlite3.connect(folder / "entities.db") as copy:
        source.backup(copy)  # a consistent copy, whatever the journal holds
    return Stack(models_home, folder, models, policy=policy, max_age={"sums": 30 * MINUTE}, default_max_age=60 * MINUTE)


def publish(stack: Stack, model: str, rows: list[tuple[str, dict[str, Any], float]]) -> None:
    """Publish one generation of `model` in the stack's store: (key, prediction, minutes ago computed)."""
    generation = stack.predictions.begin_generation(model)
    batch = [(key, prediction, 1, stack.clock.ago(minutes=minutes)) for key, prediction, minutes in rows]
    stack.predictions.write_batch(model, generation, batch)
    stack.predictions.publish(model, generation)


@contextmanager
def running_app(app: Any) -> Iterator[tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]]:
    """The app started on an event loop of its own, kept across many requests (hypothesis examples)."""
    loop = asyncio.new_event_loop()
    lifespan = Lifespan(app)
    loop.run_until_complete(lifespan.__aenter__())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    try:
        yield loop, client
    finally:
        loop.run_until_complete(client.aclose())
        loop.run_until_complete(lifespan.__aexit__(None, None, None))
        loop.close()
