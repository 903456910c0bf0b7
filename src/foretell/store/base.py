"""The online prediction store contract: predictions by model and entity key, in generations.

A batch job fills a *generation* (a numbered, private set of rows) with any number of
`write_batch` calls, from one process or several in turn, then `publish`es it: one atomic
switch of the model's published-generation pointer. A reader sees the previous
generation or the new one, whole, never a mix and never a gap. After the switch the
older generations, and any unpublished one older than the new one (a job that died),
are deleted. Live predictions (`put_live`) sit beside the generations, one per key.

What a lookup returns (the precedence rule, the same for every backend):

1. The published generation is a snapshot of the population; its *start* is the
   earliest `computed_at` among its rows. Live entries computed before that start are
   older than the snapshot and no longer count (publishing deletes them).
2. Of the published generation's entry and a counting live entry for the key, the one
   computed later wins; on a tie the generation's entry wins. Either alone is returned.

So a key absent from a newly published generation is gone, unless it was predicted live
after that generation's rows were computed (a new customer scored on request, say).

Timestamps are stored normalized to `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, fixed width), so
comparing the strings compares the instants, in SQL and in Redis alike.

Backends: `sqlite.py` (embedded default). A Redis backend fits the same shape: a hash per
generation (`…:{model}:gen:{n}`), an INCR counter for numbers, a pointer key switched
by one write, and reads that resolve the pointer and fetch rows atomically (one Lua
script), because deleting the old generation right after the switch must not leave a
reader holding the old pointer with nothing behind it. Every backend runs
tests/contract/test_store.py.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import orjson

from foretell.errors import ForetellError, InvalidInput

__all__ = [
    "BatchRow",
    "EncodedRows",
    "PredictionStore",
    "Source",
    "StoreError",
    "StoredPrediction",
    "check_key",
    "check_model",
    "check_version",
    "decode_prediction",
    "encode_prediction",
    "newest",
    "utc_timestamp",
]

Source = Literal["batch", "live"]
BatchRow = tuple[str, Mapping[str, Any], int, str]
"""(key, prediction, model_version, computed_at), as `write_batch` takes them."""


class StoreError(ForetellError):
    """The store refused an operation: a generation that is not open, an empty publish, a broken database."""


@dataclass(frozen=True, slots=True)
class StoredPrediction:
    """One entity's prediction as the store holds it, and where it came from."""

    model: str
    key: str
    prediction: dict[str, Any]
    """Output name → JSON value (numpy scalars and arrays arrive as plain numbers and lists)."""
    model_version: int
    computed_at: str
    """When the prediction was computed, ISO-8601 UTC (`2024-05-01T02:00:00.000000Z`)."""
    source: Source
    generation: int | None
    """The batch generation it belongs to; None for a live entry."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "key": self.key,
            "prediction": self.prediction,
            "model_version": self.model_version,
            "computed_at": self.computed_at,
            "source": self.source,
            "generation": self.generation,
        }


class PredictionStore(Protocol):
    def begin_generation(self, model: str) -> int:
        """A new, unpublished generation number for `model`; numbers only grow, never reused."""
        ...

    def write_batch(self, model: str, generation: int, rows: Iterable[BatchRow]) -> int:
        """Add rows to an open generation, all or none; returns how many. A key written twice keeps the last."""
        ...

    def publish(self, model: str, generation: int) -> None:
        """Make `generation` the one readers see, atomically; then delete the generations older than it."""
        ...

    def abandon(self, model: str, generation: int) -> None:
        """Drop an unpublished generation and its rows."""
        ...

    def put_live(
        self, model: str, key: str, prediction: Mapping[str, Any], model_version: int, computed_at: str
    ) -> None:
        """Record one prediction made on request; an older one than the key's stored live entry is ignored."""
        ...

    def get(self, model: str, key: str) -> StoredPrediction | None:
        """The key's prediction by the precedence rule (module docstring), or None."""
        ...

    def get_many(self, model: str, keys: Iterable[str]) -> dict[str, StoredPrediction]:
        """Predictions for the keys that have one, all read from one published generation."""
        ...

    def current_generation(self, model: str) -> int | None:
        """The published generation's number; None before the first publish."""
        ...

    def stats(self, model: str) -> dict[str, Any]:
        """`generation`, `published_at`, `rows` (keys in the published generation), `live_rows` (counting ones)."""
        ...

    def close(self) -> None:
        """Release connections; the store must not be used afterwards."""
        ...


# -- shared by the backends: validation and encoding, so every backend stores the same bytes --


def check_model(model: object) -> str:
    if not isinstance(model, str) or not model:
        raise InvalidInput(f"a model name must be a non-empty string, got {model!r}")
    return model


def utc_timestamp(value: object) -> str:
    """`value` (ISO-8601 with a timezone) as fixed-width UTC text, so string order is time order."""
    if not isinstance(value, str):
        raise InvalidInput(f"computed_at must be an ISO-8601 string, got {type(value).__name__} {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"computed_at {value!r} is not an ISO-8601 timestamp") from None
    if moment.tzinfo is None:
        raise InvalidInput(f"computed_at {value!r} has no timezone; give one, e.g. {value}Z for UTC")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode_prediction(key: str, prediction: object) -> bytes:
    if not isinstance(prediction, Mapping):
        raise InvalidInput(
            f"the prediction for key {key!r} must be a mapping of output name to value, got {type(prediction).__name__}"
        )
    try:
        # NaN and infinity become null, as in any JSON; numpy values become plain JSON.
        return orjson.dumps(prediction if isinstance(prediction, dict) else dict(prediction), option=_JSON_OPTIONS)
    except TypeError as exc:
        raise InvalidInput(f"the prediction for key {key!r} is not JSON-serializable: {exc}") from None


def check_key(key: object) -> str:
    if not isinstance(key, str):
        raise InvalidInput(f"an entity key must be a string, got {type(key).__name__} {key!r}; convert it with str()")
    return key


def check_version(key: str, version: object) -> int:
    try:
        return operator.index(version)  # type: ignore[arg-type]  # ints and numpy ints; never floats
    except TypeError:
        raise InvalidInput(
            f"model_version for key {key!r} must be an integer, got {type(version).__name__} {version!r}"
        ) from None


class EncodedRows:
    """`write_batch` rows validated and encoded on the fly, noting the earliest `computed_at` seen.

    A batch job stamps every row with the job's start time, so timestamps are normalized
    once per distinct value rather than once per row.
    """

    def __init__(self, rows: Iterable[Any]) -> None:  # Any: every field is checked here
        self._rows = rows
        self._stamps: dict[str, str] = {}
        self.count = 0

    @property
    def earliest(self) -> str | None:
        return min(self._stamps.values(), default=None)

    def __iter__(self) -> Iterator[tuple[str, bytes, int, str]]:
        stamps = self._stamps
        for row in self._rows:
            try:
                key, prediction, version, computed_at = row
            except (TypeError, ValueError):
                raise InvalidInput(
                    f"row {self.count} must be (key, prediction, model_version, computed_at), got {row!r}"
                ) from None
            stamp = stamps.get(computed_at) if isinstance(computed_at, str) else None
            if stamp is None:  # a new timestamp, or not a string (refused here)
                stamp = stamps[computed_at] = utc_timestamp(computed_at)
            key = check_key(key)
            yield key, encode_prediction(key, prediction), check_version(key, version), stamp
            self.count += 1


def decode_prediction(raw: bytes) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(raw)
    return value


def newest(batch: StoredPrediction | None, live: StoredPrediction | None) -> StoredPrediction | None:
    """The precedence rule's step 2: the later computed wins, a tie goes to the generation."""
    if live is None:
        return batch
    if batch is None or live.computed_at > batch.computed_at:
        return live
    return batch


_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
