"""A version's reference profile: what its inputs and outputs looked like when it was registered.

Drift is measured against it (`foretell.profiles.drift`). It is computed once, at
registration, from the registration sample (or the compile's validation rows), and kept
as JSON next to the registry: small (about 3 KB a feature), readable, versionless.

- numeric features and outputs: count, missing rate, mean/std/min/max, the 101
  percentiles (inverse-CDF, so every one is a value that occurred: a 0/1 feature keeps
  its two values), and the PSI bins: interior cut points at the deduplicated deciles with
  the reference share of each bin;
- categorical ones (declared categories, labels, strings): the share of each category
  among non-missing rows. A category feature lists every declared category (0.0 when
  the sample never had it); a free-text string feature keeps its 50 most frequent values
  and the share of all the others (`other`), as do top-k item lists;
- vector features (shape other than `()`) and list outputs (top-k `items` and `scores`)
  are profiled flattened: every element of every row pooled, `count` counts elements.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from foretell.core.feature import Feature
from foretell.core.schema import Output, Signature
from foretell.profiles.values import as_categories, as_floats, codes_to_names

__all__ = [
    "TOP_VALUES",
    "CategoricalProfile",
    "NumericProfile",
    "ProfileSource",
    "ReferenceProfile",
    "build_profile",
    "profile_categories",
    "profile_numbers",
]

#: Distinct values a string feature or an item list keeps by name; the rest pool into `other`.
TOP_VALUES = 50
PERCENTILES = np.arange(101)
ProfileSource = Literal["sample", "validation"]
#: Output kinds whose values are names (a class, an item id), not amounts.
CATEGORICAL_OUTPUTS = frozenset({"label", "topk_items"})


@dataclass(frozen=True)
class NumericProfile:
    """One numeric feature or output, as the reference saw it."""

    count: int
    missing_rate: float
    mean: float
    std: float
    min: float
    max: float
    quantiles: tuple[float, ...]
    """The percentiles 0..100 (101 values; empty when every value was missing)."""
    edges: tuple[float, ...]
    """Interior cut points of the PSI bins: bin i holds edges[i-1] <= x < edges[i]."""
    fractions: tuple[float, ...]
    """The reference share of non-missing values in each bin (len(edges) + 1)."""
    kind: Literal["numeric"] = field(default="numeric", init=False)

    @property
    def median(self) -> float:
        return self.quantiles[50] if self.quantiles else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "count": self.count,
            "missing_rate": self.missing_rate,
            "mean": _finite(self.mean),
            "std": _finite(self.std),
            "min": _finite(self.min),
            "max": _finite(self.max),
            "quantiles": list(self.quantiles),
            "edges": list(self.edges),
            "fractions": list(self.fractions),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericProfile:
        return cls(
            count=int(data["count"]),
            missing_rate=float(data["missing_rate"]),
            mean=_float(data["mean"]),
            std=_float(data["std"]),
            min=_float(data["min"]),
            max=_float(data["max"]),
            quantiles=tuple(float(q) for q in data["quantiles"]),
            edges=tuple(float(e) for e in data["edges"]),
            fractions=tuple(float(f) for f in data["fractions"]),
        )


@dataclass(frozen=True)
class CategoricalProfile:
    """One categorical feature or output, as the reference saw it."""

    count: int
    missing_rate: float
    frequencies: Mapping[str, float]
    """The share of non-missing rows per category, most frequent first (declared categories all present)."""
    other: float = 0.0
    """The share of values outside `frequencies` (kept for free text and item lists, which keep their top 50)."""
    kind: Literal["categorical"] = field(default="categorical", init=False)

    @property
    def open(self) -> bool:
        """True when values beyond `frequencies` were seen and pooled: a new one is then not news."""
        return self.other > 0

    @property
    def top(self) -> str | None:
        return max(self.frequencies, key=lambda name: self.frequencies[name]) if self.frequencies else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "count": self.count,
            "missing_rate": self.missing_rate,
            "frequencies": dict(self.frequencies),
            "other": self.other,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalProfile:
        return cls(
            count=int(data["count"]),
            missing_rate=float(data["missing_rate"]),
            frequencies={str(k): float(v) for k, v in data["frequencies"].items()},
            other=float(data.get("other", 0.0)),
        )


ColumnProfile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class ReferenceProfile:
    """The profile of one model version: each input and each output, from `rows` reference rows."""

    model: str
    version: int
    rows: int
    source: ProfileSource
    created_at: str
    inputs: Mapping[str, ColumnProfile]
    outputs: Mapping[str, ColumnProfile]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "rows": self.rows,
            "source": self.source,
            "created_at": self.created_at,
            "inputs": {name: p.to_dict() for name, p in self.inputs.items()},
            "outputs": {name: p.to_dict() for name, p in self.outputs.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        source = data["source"]
        if source not in ("sample", "validation"):
            raise ValueError(f"a profile's source is 'sample' or 'validation', got {source!r}")
        return cls(
            model=str(data["model"]),
            version=int(data["version"]),
            rows=int(data["rows"]),
            source=source,
            created_at=str(data["created_at"]),
            inputs={name: _column_from_dict(p) for name, p in data["inputs"].items()},
            outputs={name: _column_from_dict(p) for name, p in data["outputs"].items()},
        )


def build_profile(
    model: str,
    version: int,
    signature: Signature,
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    *,
    source: ProfileSource,
    created_at: datetime | None = None,
) -> ReferenceProfile:
    """The profile of `inputs` (columns by feature name: a coerced `Frame` or any mapping) and `outputs`.

    Category features may come as coercion makes them (float codes) or by name. Outputs
    the signature does not describe are profiled by their values' type.
    """
    missing = [f.name for f in signature.inputs if f.name not in inputs]
    if missing:
        raise ValueError(f"the profile's rows lack the features {missing}")
    profiled_inputs = {f.name: profile_feature(f, inputs[f.name]) for f in signature.inputs}
    kinds = {o.name: o for o in signature.outputs}
    profiled_outputs = {name: profile_output(kinds.get(name), values) for name, values in outputs.items()}
    rows = len(next(iter(inputs.values()))) if inputs else 0
    when = (created_at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    return ReferenceProfile(model, int(version), rows, source, when, profiled_inputs, profiled_outputs)


def profile_feature(feature: Feature, values: Any) -> ColumnProfile:
    if feature.dtype == "category":
        names = values if _is_names(values) else codes_to_names(values, feature.categories or ())
        return profile_categories(names, declared=feature.categories)
    if feature.dtype == "string":
        return profile_categories(values)
    return profile_numbers(values)


def profile_output(output: Output | None, values: Any) -> ColumnProfile:
    if output is not None and output.kind in CATEGORICAL_OUTPUTS:
        return profile_categories(values)
    if output is None and _is_names(values):
        return profile_categories(values)
    return profile_numbers(values)


#: A numeric feature with at most this many distinct values between its 1st and 99th percentiles is
#: binned by its values rather than its deciles.
DISCRETE_VALUES = 12


def profile_numbers(values: Any) -> NumericProfile:
    """Count, missing rate, moments, percentiles and PSI bins of numeric values.

    Infinities (a recommender's -inf for films already seen) count in the end bins, as live
    values are counted; the moments, extremes and percentiles are those of the finite values.
    """
    floats = as_floats(values)
    present = floats[~np.isnan(floats)]
    finite = present[np.isfinite(present)]
    count = len(floats)
    missing_rate = (count - len(present)) / count if count else 0.0
    if not len(finite):
        return NumericProfile(count, missing_rate, math.nan, math.nan, math.nan, math.nan, (), (), (1.0,))
    # Inverse-CDF percentiles are values that occurred, so a discrete feature keeps its own values
    # as cut points (linear interpolation would invent 0.3 between a 0 and a 1).
    quantiles = np.percentile(finite, PERCENTILES, method="inverted_cdf")
    # A count (support calls, devices) has few values: each of them is a bin of its own, or the deciles
    # would pool 1, 2 and 9 calls into one "≥ 1" bin and a segment's jump from 0 to 4 calls would hide
    # in it. Values past the 1st and 99th percentiles share the end bins: a lone extreme is not a bin.
    common = np.unique(quantiles[1:100])
    edges = common if len(common) <= DISCRETE_VALUES else np.unique(quantiles[10:91:10])
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    return NumericProfile(
        count=count,
        missing_rate=missing_rate,
        mean=float(finite.mean()),
        std=float(finite.std()),
        min=float(finite.min()),
        max=float(finite.max()),
        quantiles=tuple(quantiles.tolist()),
        edges=tuple(edges.tolist()),
        fractions=tuple((counts / len(present)).tolist()),
    )


def profile_categories(values: Any, *, declared: tuple[str, ...] | None = None) -> CategoricalProfile:
    """The share of each category; `declared` ones all listed, else the 50 most frequent and `other`."""
    names = as_categories(values)
    count = len(names)
    present = count - names.null_count
    missing_rate = names.null_count / count if count else 0.0
    tally = pc.value_counts(names.drop_null())
    counted = dict(zip(tally.field("values").to_pylist(), tally.field("counts").to_pylist(), strict=True))
    order = sorted(counted, key=lambda name: (-counted[name], name))
    if declared is not None:
        kept = [name for name in order if name in declared] + [name for name in declared if name not in counted]
    else:
        kept = order[:TOP_VALUES]
    share = {name: counted.get(name, 0) / present if present else 0.0 for name in kept}
    if declared is not None:  # a closed list: anything else is a category never seen (coercion refuses it anyway)
        return CategoricalProfile(count, missing_rate, share)
    other = (present - sum(counted.get(name, 0) for name in kept)) / present if present else 0.0
    return CategoricalProfile(count, missing_rate, share, max(other, 0.0))


def _is_names(values: Any) -> bool:
    if isinstance(values, np.ndarray):
        return values.dtype.kind in "OUS"
    if isinstance(values, pa.Array | pa.ChunkedArray):
        kind = values.type.value_type if pa.types.is_dictionary(values.type) else values.type
        return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))
    return False


def _column_from_dict(data: Mapping[str, Any]) -> ColumnProfile:
    kind = data.get("kind")
    if kind == "numeric":
        return NumericProfile.from_dict(data)
    if kind == "categorical":
        return CategoricalProfile.from_dict(data)
    raise ValueError(f"a column profile's kind is 'numeric' or 'categorical', got {kind!r}")


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _float(value: float | None) -> float:
    return math.nan if value is None else float(value)
