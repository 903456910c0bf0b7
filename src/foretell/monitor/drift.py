"""The monitor's drift section: a window's inputs and outputs against the version's reference profile.

Traffic is judged in two groups, each against the reference on its own:

- `batch`: the rows batch jobs scored, read back from their input files (the session's
  `batch_inputs` view), and the outputs the jobs wrote;
- `online`: the `inputs` struct of live-sourced predictions (`live`, `live-fallback`,
  `event-refresh`: the rows the model scored on the spot) and their outputs.

A feature's status is the worse of its two groups, and its row says which group it is
(`FeatureDrift.group`); `DriftSection.by_group` keeps both. Judged together, a nightly job
of a million rows would drown a drift that only online traffic shows (one segment's
customers calling support more, in a few thousand requests). Precomputed lookups are left
out: they serve answers a batch job already scored, and would count its rows twice.

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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from foretell.errors import StoreError
from foretell.ledger.sql import ident
from foretell.profiles.drift import FeatureDrift, Thresholds, counted_drift, rank, worst
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
    by_group: Mapping[str, tuple[FeatureDrift, ...]] = field(default_factory=dict)
    """Each group's judgement of every input and output (`batch`, `online`), for groups with rows."""

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
            "by_group": {group: [d.to_dict() for d in judged] for group, judged in self.by_group.items()},
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
    groups = {
        "batch": (
            _batch_columns(session, profile.inputs, version, signature),
            _output_columns(session, profile.outputs, version, ("batch",)),
        ),
        "online": (
            _live_columns(session, "inputs", profile.inputs, version),
            _output_columns(session, profile.outputs, version, LIVE_SOURCES),
        ),
    }
    groups = {name: tables for name, tables in groups.items() if tables[0].num_rows or tables[1].num_rows}
    # Every check of every column in every group shares one false-alarm chance.
    family = (len(profile.inputs) + len(profile.outputs)) * max(len(groups), 1)
    by_group = {
        group: tuple(
            replace(_judge(name, column, [tables[0]], thresholds, family), group=group)
            for name, column in profile.inputs.items()
        )
        + tuple(
            replace(_judge(name, column, [tables[1]], thresholds, family), group=group)
            for name, column in profile.outputs.items()
        )
        for group, tables in groups.items()
    }
    n_inputs = len(profile.inputs)
    if by_group:
        chosen = [
            _worse_of([judged[i] for judged in by_group.values()]) for i in range(n_inputs + len(profile.outputs))
        ]
    else:  # nothing in the window: every column judged on no rows
        empty = pa.table({"hour": pa.array([], pa.int64())})
        chosen = [_judge(n, c, [empty], thresholds, family) for n, c in {**profile.inputs, **profile.outputs}.items()]
    header = {k: v for k, v in profile.to_dict().items() if k not in ("inputs", "outputs")}
    rows = sum(tables[0].num_rows for tables in groups.values())
    return DriftSection(version, header, rows, tuple(chosen[:n_inputs]), tuple(chosen[n_inputs:]), thresholds, by_group)


def _worse_of(judged: list[FeatureDrift]) -> FeatureDrift:
    """The group whose figures say most: the worse status, then the larger PSI (a group without rows last)."""
    return max(judged, key=lambda d: (rank(d.status), d.rows > 0, d.psi if d.psi is not None else -1.0))


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


def _output_columns(
    session: LedgerSession, wanted: Mapping[str, ColumnProfile], version: int | None, of: tuple[str, ...]
) -> pa.Table:
    present = [name for name in wanted if name in _fields(session, "predictions", "outputs")]
    sources = ", ".join(f"'{s}'" for s in of)
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
