"""One key's answer to a lookup (`Lookup`), and the pure steps between a stored prediction and that answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from foretell import tracing
from foretell.core.predictor import TOPK_KINDS
from foretell.core.schema import Signature
from foretell.hybrid.freshness import age_seconds
from foretell.store.base import StoredPrediction

__all__ = ["Lookup", "annotate_outcomes", "from_store", "outcomes_of", "rank_of", "sliced"]


@dataclass(slots=True)
class Lookup:
    """One key's answer, and where it came from.

    Made anew for every request (never shared between two), so the ledger's id can be set
    on it once recorded: re-creating the answer to add it cost a lookup more than the rest
    of its recording.
    """

    model: str
    key: str
    source: Literal["precomputed", "live"]
    prediction: dict[str, Any]
    model_version: int
    computed_at: str
    generation: int | None
    age_seconds: float
    stale: bool = False
    """True when the stored prediction was too old but nothing could replace it (no features)."""
    prediction_id: str | None = None
    """The ledger's id for this answer (None when the server keeps no ledger)."""

    def to_dict(self) -> dict[str, Any]:
        shown = {
            "model": self.model,
            "key": self.key,
            "source": self.source,
            "prediction": self.prediction,
            "model_version": self.model_version,
            "computed_at": self.computed_at,
            "generation": self.generation,
            "age_seconds": round(self.age_seconds, 3),
            "stale": self.stale,
        }
        if self.prediction_id is not None:
            shown["prediction_id"] = self.prediction_id
        return shown


def outcomes_of(wanted: list[str], answers: Mapping[str, Lookup], computed: Mapping[str, Lookup]) -> dict[str, int]:
    """A lookup's keys by hybrid outcome: hit (fresh from the store), fallback (predicted live now),
    stale (an old stored answer, no live one possible) or miss (no answer)."""
    counts = {"hit": 0, "fallback": 0, "stale": 0, "miss": 0}
    for key in wanted:
        answer = answers.get(key)
        outcome = "miss" if answer is None else "fallback" if key in computed else "stale" if answer.stale else "hit"
        counts[outcome] += 1
    return counts


def annotate_outcomes(counts: Mapping[str, int]) -> None:
    """The lookup's outcomes (`outcomes_of`) on its request span: a count each, and the one outcome of a single key."""
    attributes: dict[str, Any] = {f"foretell.hybrid.{outcome}s": n for outcome, n in counts.items()}
    if sum(counts.values()) == 1:
        attributes["foretell.hybrid.outcome"] = next(o for o, n in counts.items() if n)
    tracing.current_span().set_attributes(attributes)


def from_store(found: StoredPrediction, now: datetime, model: str) -> Lookup:
    """The answer a stored prediction gives at `now`: precomputed when a batch job wrote it, else live."""
    source: Literal["precomputed", "live"] = "precomputed" if found.source == "batch" else "live"
    return Lookup(
        model,
        found.key,
        source,
        found.prediction,
        found.model_version,
        found.computed_at,
        found.generation,
        age_seconds(found.computed_at, now),
    )


def rank_of(found: StoredPrediction, served: int) -> tuple[bool, str]:
    """Which of two stored answers wins: the served version's, then the newer."""
    return found.model_version == served, found.computed_at


def sliced(lookup: Lookup, signature: Signature, k: int | None) -> Lookup | None:
    """The stored top-k lists cut to `k`; None when they are shorter (the model must run again)."""
    if k is None:
        return lookup
    prediction = dict(lookup.prediction)
    for output in signature.outputs:
        if output.kind in TOPK_KINDS:
            values = prediction.get(output.name)
            if not isinstance(values, list) or len(values) < k:
                return None
            prediction[output.name] = values[:k]
    return replace(lookup, prediction=prediction)
