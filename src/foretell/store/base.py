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

Backends: `sqlite.py` (embedded default) and `redis.py`: a hash per generation
(`…:{model}:gen:{n}`), an INCR counter for numbers, a pointer key switched by one write,
and reads that resolve the pointer and fetch rows atomically (one Lua script), because
deleting the old generation right after the switch must not leave a reader holding the
old pointer with nothing behind it. Every backend runs tests/contract/test_store.py, and
takes its checks, refusals and precedence rule from here, so they say the same things.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import orjson

from foretell.errors import InvalidInput, StoreError

__all__ = [
    "BatchRow",
    "EncodedRows",
    "PredictionStore",
    "Source",
    "StoredPrediction",
    "StoredRow",
    "check_begun",
    "check_generation",
    "check_key",
    "check_keys",
    "check_model",
    "check_rows",
    "check_version",
    "cleanup_failed",
    "decode_prediction",
    "empty_generation",
    "encode_prediction",
    "format_utc",
    "newest",
    "not_open",
    "published_generation",
    "resolve",
    "utc_now",
    "utc_timestamp",
]

Source = Literal["batch", "live"]
BatchRow = tuple[str, Mapping[str, Any], int, str]
"""(key, prediction, model_version, computed_at), as `write_batch` takes them."""
StoredRow = tuple[str, bytes, int, str]
"""(key, prediction JSON, model_version, computed_at), as a backend reads a row back."""


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

    def put_live_many(self, model: str, rows: Iterable[BatchRow]) -> None:
        """`put_live` for each row (key, prediction, model_version, computed_at), all in one write, all or none."""
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
    return format_utc(moment)


def format_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_now() -> datetime:
    """The stores' default clock (for `created_at` and `published_at`)."""
    return datetime.now(UTC)


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


def check_keys(keys: Iterable[str]) -> list[str]:
    """`get_many`'s keys, checked, each once, in the order given."""
    if isinstance(keys, (str, bytes)):
        raise InvalidInput(f"get_many takes a list of keys, got the string {keys!r}; for one key use get()")
    return list(dict.fromkeys(check_key(key) for key in keys))


def check_rows(rows: object) -> None:
    """Refuse the containers that iterate but are not rows (a string, a {key: prediction} dict)."""
    if isinstance(rows, (str, bytes, Mapping)):
        raise InvalidInput(
            f"write_batch takes an iterable of (key, prediction, model_version, computed_at) rows, "
            f"got {type(rows).__name__}"
        )


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


def resolve(
    model: str,
    wanted: Iterable[str],
    batch: Iterable[StoredRow],
    live: Iterable[StoredRow],
    generation: int | None,
    since: str,
) -> dict[str, StoredPrediction]:
    """The precedence rule applied to what one snapshot read found for the `wanted` keys.

    `batch` rows come in write order, so a key written twice in one generation keeps the
    last; `since` is the published snapshot's start ("" before the first publish).
    """
    from_batch = {row[0]: row for row in batch}
    # Live entries computed before the published snapshot started no longer count.
    from_live = {row[0]: row for row in live if row[3] >= since}
    found: dict[str, StoredPrediction] = {}
    for key in wanted:
        b, v = from_batch.get(key), from_live.get(key)
        winner = newest(
            None if b is None else _stored(model, b, "batch", generation),
            None if v is None else _stored(model, v, "live", None),
        )
        if winner is not None:
            found[key] = winner
    return found


def _stored(model: str, row: StoredRow, source: Source, generation: int | None) -> StoredPrediction:
    key, raw, version, computed_at = row
    return StoredPrediction(
        model=model,
        key=key,
        prediction=decode_prediction(raw),
        model_version=version,
        computed_at=computed_at,
        source=source,
        generation=generation,
    )


def newest(batch: StoredPrediction | None, live: StoredPrediction | None) -> StoredPrediction | None:
    """The precedence rule's step 2: the later computed wins, a tie goes to the generation."""
    if live is None:
        return batch
    if batch is None or live.computed_at > batch.computed_at:
        return live
    return batch


# -- generations: what a backend says when a generation cannot be written, published or abandoned --


def check_generation(generation: object) -> int:
    if isinstance(generation, bool) or not isinstance(generation, int):
        raise InvalidInput(f"a generation is the integer begin_generation returned, got {generation!r}")
    return generation


def check_begun(model: str, generation: int, last: int, where: str) -> None:
    """Refuse a generation number `begin_generation` never gave (`last` is the latest it gave, 0 for none)."""
    if last == 0:
        raise StoreError(f"model {model!r} has no generations in {where}; call begin_generation first")
    if not 0 < generation <= last:
        raise StoreError(f"model {model!r} has no generation {generation}; the latest begun is {last}")


def not_open(model: str, generation: int, state: str | None, published: int | None) -> StoreError:
    """Why a begun generation that is not open (`state` published, or None once deleted) takes no rows."""
    if state == "published":
        return StoreError(f"generation {generation} of {model!r} is already published; begin a new generation")
    why = "it was abandoned"
    if published is not None and generation < published:
        why += f", or superseded when generation {published} was published"
    return StoreError(f"generation {generation} of {model!r} is gone: {why}; begin a new generation")


def empty_generation(model: str, generation: int) -> StoreError:
    return StoreError(
        f"generation {generation} of {model!r} has no rows; publishing it would empty the store "
        f"for every key. Write rows first, or abandon it"
    )


def published_generation(model: str, generation: int) -> StoreError:
    """`abandon` of the generation readers are using."""
    return StoreError(
        f"generation {generation} of {model!r} is the published one; readers depend on it. "
        f"Publish a newer generation to replace it"
    )


def cleanup_failed(model: str, generation: int, exc: Exception) -> StoreError:
    return StoreError(
        f"generation {generation} of {model!r} is published, but deleting older generations failed "
        f"({exc}); the next publish retries"
    )


_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
