"""The monitor's drift section: a window's inputs and outputs against the version's reference profile.

Inputs come from two places in a ledger session: the `inputs` struct of live-sourced
predictions (`live`, `live-fallback`, `event-refresh`: the rows the model scored on the
spot) and the `batch_inputs` view (the rows batch jobs scored, read back from their input
files). Precomputed lookups are left out: they serve answers a batch job already scored,
and would count its rows twice. Outputs come from the same predictions, batch rows
included (their outputs are the job's written columns).

The columns are fetched as Arrow (DuckDB hands them over without a copy) and counted
against the profile's cells with numpy (`foretell.profiles.grids`): counting is one sort
per column, so 2M rows of 31 features take well under a second. For a feature that
warns or alerts, the counts are then split by hour to find `since`: the first hour
whose rows alone pass its warn threshold.
"""

# ruff: noqa: S608 - names are quoted by `ident`, versions are ints

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from foretell.errors import StoreError
from foretell.ledger.sql import ident
from foretell.profiles.drift import FeatureDrift, Thresholds, counted_drift, worst
from foretell.profiles.grids import CategoricalGrid, NumericGrid, grid_for
from foretell.profiles.reference import CategoricalProfile, ColumnProfile, ReferenceProfile
from foretell.profiles.values import codes_to_names

if TYPE_CHECKING:
    from foretell.core.schema import Signature
    from foretell.ledger.session import LedgerSession

__all__ = ["LIVE_SOURCES", "DriftSection", "drift_section"]

#: Sources whose rows the model scored on the spot, with their inputs recorded.
LIVE_SOURCES = ("live", "live-fallback", "event-refresh")
_HOUR_US = 3_600_000_000


@dataclass(frozen=True)
class DriftSection:
    """Each input and output of one version over the window, against its reference profile."""

    version: int | None
    reference: dict[str, Any] | None
    """The profile's header (model, version, rows, source, created_at); None when none is stored."""
    rows: int
    features: tuple[FeatureDrift, ...]
    outputs: tuple[FeatureDrift, ...]
    thresholds: Thresholds

    @property
    def status(self) -> str:
        """The worst status of any feature or output; "unknown" without a profile."""
        if self.reference is None:
            return "unknown"
        return worst(d.status for d in (*self.features, *self.outputs))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "reference": self.reference,
            "status": self.status,
            "rows": self.rows,
            "features": [d.to_dict() for d in self.features],
            "outputs": [d.to_dict() for d in self.outputs],
            "thresholds": self.thresholds.to_dict(),
        }


def drift_section(
    session: LedgerSession,
    profile: ReferenceProfile | None,
    thresholds: Thresholds,
    *,
    version: int | None,
    signature: Signature | None = None,
) -> DriftSection:
    """Drift of the window's inputs and outputs (of `version`, or every version) against `profile`.

    `signature` (the version's) names category codes a batch input file may hold instead of names.
    """
    if profile is None:
        return DriftSection(version, None, 0, (), (), thresholds)
    live = _live_columns(session, "inputs", profile.inputs, version)
    batch = _batch_columns(session, profile.inputs, version, signature)
    outputs = _output_columns(session, profile.outputs, version)
    family = len(profile.inputs) + len(profile.outputs)
    features = tuple(_judge(name, column, [live, batch], thresholds, family) for name, column in profile.inputs.items())
    judged_outputs = tuple(
        _judge(name, column, [outputs], thresholds, family) for name, column in profile.outputs.items()
    )
    header = {k: v for k, v in profile.to_dict().items() if k not in ("inputs", "outputs")}
    return DriftSection(version, header, live.num_rows + batch.num_rows, features, judged_outputs, thresholds)


def _judge(
    name: str, profile: ColumnProfile, sources: list[pa.Table], thresholds: Thresholds, family: int
) -> FeatureDrift:
    grid = grid_for(profile)
    present = [t for t in sources if name in t.column_names]
    counts = np.zeros(grid.ncells, dtype=np.int64)
    unseen: Counter[str] = Counter()
    for table in present:
        values = table.column(name)
        counts += grid.count(values)
        if isinstance(grid, CategoricalGrid):
            unseen.update(grid.unseen_names(values))
    found = counted_drift(name, grid, counts, thresholds, unseen=dict(unseen.most_common(10)), family=family)
    if found.status == "ok" or not present:
        return found
    return _with_since(found, name, grid, present, thresholds, family)


def _with_since(
    found: FeatureDrift,
    name: str,
    grid: NumericGrid | CategoricalGrid,
    sources: list[pa.Table],
    thresholds: Thresholds,
    family: int,
) -> FeatureDrift:
    """`found` with `since`: the first hour whose rows alone pass the warn threshold."""
    hours = np.unique(np.concatenate([t.column("hour").to_numpy() for t in sources]))  # only hours with rows
    counts = np.zeros((len(hours), grid.ncells), dtype=np.int64)
    for table in sources:
        values = table.column(name).combine_chunks()
        groups = np.searchsorted(hours, table.column("hour").to_numpy())
        if _is_list(values.type):  # a vector's elements each count in their row's hour
            groups = groups[pc.list_parent_indices(values).to_numpy()]
            values = pc.list_flatten(values)
        counts += grid.count_groups(values, groups.astype(np.intp), len(hours))
    for hour, hour_counts in zip(hours.tolist(), counts, strict=True):
        if counted_drift(name, grid, hour_counts, thresholds, family=family).status != "ok":
            return replace(found, since=datetime.fromtimestamp(hour * 3600, UTC).isoformat())
    return found


def _live_columns(
    session: LedgerSession, struct: str, wanted: Mapping[str, ColumnProfile], version: int | None
) -> pa.Table:
    """The recorded `inputs` of the window's live-sourced rows, one column per profiled feature present."""
    present = [name for name in wanted if name in _fields(session, "predictions", struct)]
    sources = ", ".join(f"'{s}'" for s in LIVE_SOURCES)
    where = f"source IN ({sources}) AND {ident(struct)} IS NOT NULL" + _of_version(version)
    return _fetch(session, "predictions", [f"{ident(struct)}.{ident(n)} AS {ident(n)}" for n in present], where)


def _output_columns(session: LedgerSession, wanted: Mapping[str, ColumnProfile], version: int | None) -> pa.Table:
    present = [name for name in wanted if name in _fields(session, "predictions", "outputs")]
    sources = ", ".join(f"'{s}'" for s in (*LIVE_SOURCES, "batch"))
    where = f"source IN ({sources}) AND status = 'ok' AND outputs IS NOT NULL" + _of_version(version)
    return _fetch(session, "predictions", [f"outputs.{ident(n)} AS {ident(n)}" for n in present], where)


def _batch_columns(
    session: LedgerSession, wanted: Mapping[str, ColumnProfile], version: int | None, signature: Signature | None
) -> pa.Table:
    """The window's batch input rows, one column per profiled feature the input files have."""
    have = {str(name): str(kind) for name, kind, *_ in session.rows("DESCRIBE batch_inputs")}
    present = [name for name in wanted if name in have]
    table = _fetch(session, "batch_inputs", [ident(n) for n in present], "true" + _of_version(version))
    if signature is None:
        return table
    for name in present:  # a file may hold a category's code where the ledger has its name
        kind = table.schema.field(name).type
        coded = pa.types.is_integer(kind) or pa.types.is_floating(kind)
        if isinstance(wanted[name], CategoricalProfile) and coded and name in signature.input_names:
            names = codes_to_names(table.column(name), signature.feature(name).categories or ())
            table = table.set_column(table.schema.get_field_index(name), name, names)
    return table


def _fetch(session: LedgerSession, view: str, columns: list[str], where: str) -> pa.Table:
    hour = f"(epoch_us(predicted_at) // {_HOUR_US}) AS hour"
    return session.arrow(f"SELECT {', '.join([hour, *columns])} FROM {view} WHERE {where}")


def _fields(session: LedgerSession, view: str, struct: str) -> set[str]:
    try:
        described = session.rows(f"DESCRIBE SELECT {ident(struct)}.* FROM {view}")
    except StoreError:  # a NULL-typed column: nothing in the window recorded that struct
        return set()
    return {str(name) for name, *_ in described}


def _of_version(version: int | None) -> str:
    return "" if version is None else f" AND version = {int(version)}"


def _is_list(kind: pa.DataType) -> bool:
    return bool(pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind))
