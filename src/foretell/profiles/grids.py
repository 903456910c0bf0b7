"""Cells: how a column's values are counted against a reference profile, one small integer per value.

Counting is the only pass over the data a drift check needs: every statistic (PSI, KS,
missing rate, unseen share) follows from a few hundred cell counts, so counts from
different places (live records, batch inputs, one hour, the whole window, a sliding
window of slices) simply add up.

Numeric cells split the line at the reference's distinct percentiles v_0 < ... < v_m-1:
"below v_0", "= v_0", "between v_0 and v_1", "= v_1", ..., "above v_m-1", then "missing".
Keeping "= v_k" apart makes the KS statistic right for discrete features (a 0/1 flag
has all its mass on two points). The PSI bins are unions of cells, since the bins' cut
points are percentiles too. Categorical cells are the reference's categories in order,
then "anything else", then "missing".
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from foretell.profiles.reference import CategoricalProfile, NumericProfile
from foretell.profiles.values import as_categories, as_floats

__all__ = ["CategoricalGrid", "Cells", "Counts", "NumericGrid", "grid_for"]

Cells = npt.NDArray[np.intp]
Counts = npt.NDArray[np.int64]
#: Unseen categories a count keeps by name (the most frequent), to show which ones came.
UNSEEN_NAMED = 10


class NumericGrid:
    """The cells of a numeric profile, and the statistics their counts give."""

    def __init__(self, profile: NumericProfile) -> None:
        self.profile = profile
        quantiles = np.asarray(profile.quantiles, dtype=np.float64)
        self.points = np.unique(quantiles)
        m = len(self.points)
        # The reference CDF just below and at each point (percentiles are inverse-CDF values,
        # so both are right to within one percentile).
        index = np.arange(len(quantiles))
        self.below = np.array([index[quantiles == v][0] for v in self.points], dtype=np.float64) / 100.0
        self.at = np.array([index[quantiles == v][-1] for v in self.points], dtype=np.float64) / 100.0
        self.ncells = 2 * m + 2
        self.missing_cell = 2 * m + 1
        edges = np.asarray(profile.edges, dtype=np.float64)
        gaps = np.searchsorted(edges, np.append(self.points, np.inf), side="left")  # cell 2k: edges < v_k
        gaps[-1] = len(edges)
        equal = np.searchsorted(edges, self.points, side="right")  # cell 2k+1: edges <= v_k
        self.bin_of_cell = np.empty(2 * m + 1, dtype=np.intp)
        self.bin_of_cell[0::2] = gaps
        self.bin_of_cell[1::2] = equal
        self.nbins = len(edges) + 1
        self.reference = np.asarray(profile.fractions, dtype=np.float64)

    def count(self, values: Any) -> Counts:
        # Sorting and then finding the ~100 points in the sorted values is several times faster
        # than finding each of millions of values among the points (numpy sorts with SIMD).
        return self.count_sorted(np.sort(as_floats(values)))

    def count_sorted(self, ordered: npt.NDArray[np.float64]) -> Counts:
        """Cell counts of values already sorted (NaN last, as numpy sorts them)."""
        present = int(np.searchsorted(ordered, np.nan, side="left"))  # numpy orders NaN after every number
        counts = np.empty(self.ncells, dtype=np.int64)
        counts[-1] = len(ordered) - present
        valid = ordered[:present]
        below = np.searchsorted(valid, self.points, side="left")  # values < v_k
        upto = np.searchsorted(valid, self.points, side="right")  # values <= v_k
        counts[1:-1:2] = upto - below
        counts[0:-1:2] = np.diff(np.concatenate(([0], below, [present]))) - np.concatenate(([0], upto - below))
        return counts

    def count_groups(self, values: Any, groups: npt.NDArray[np.intp], ngroups: int) -> npt.NDArray[np.int64]:
        """Cell counts per group (an hour, say): one row of counts for each group 0..ngroups-1."""
        floats = as_floats(values)
        order = np.argsort(groups, kind="stable")
        bounds = np.searchsorted(groups[order], np.arange(ngroups + 1), side="left")
        ordered = floats[order]
        out = np.zeros((ngroups, self.ncells), dtype=np.int64)
        for g in range(ngroups):
            if bounds[g + 1] > bounds[g]:
                out[g] = self.count_sorted(np.sort(ordered[bounds[g] : bounds[g + 1]]))
        return out

    def bin_counts(self, counts: Counts) -> npt.NDArray[np.float64]:
        return np.bincount(self.bin_of_cell, weights=counts[:-1], minlength=self.nbins).astype(np.float64)

    def ks(self, counts: Counts) -> float | None:
        """The largest gap between the current and the reference CDF, read at the reference percentiles."""
        present = counts[:-1]
        n = int(present.sum())
        if not n or not len(self.points):
            return None
        cdf = np.cumsum(present) / n
        before = cdf[0::2][: len(self.points)]  # share below v_k
        upto = cdf[1::2]  # share at or below v_k
        return float(max(np.abs(before - self.below).max(), np.abs(upto - self.at).max()))

    def labels(self) -> tuple[str, ...]:
        edges = [f"{e:.4g}" for e in self.profile.edges]
        if not edges:
            return ("all",)
        middle = [f"[{lo}, {hi})" for lo, hi in itertools.pairwise(edges)]
        return (f"< {edges[0]}", *middle, f"≥ {edges[-1]}")


class CategoricalGrid:
    """The cells of a categorical profile: its categories, then anything else, then missing."""

    def __init__(self, profile: CategoricalProfile) -> None:
        self.profile = profile
        self.names = list(profile.frequencies)
        self.value_set = pa.array(self.names, pa.string())
        self.other_cell = len(self.names)
        self.missing_cell = len(self.names) + 1
        self.ncells = len(self.names) + 2
        shares = np.array([profile.frequencies[name] for name in self.names], dtype=np.float64)
        # A category the reference never had: one outside a closed list, or a declared one it never saw.
        self.never_seen = np.append(shares == 0, not profile.open)
        self.reference = np.append(shares, profile.other) if profile.open else shares
        self.nbins = len(self.reference)

    def cells(self, values: Any) -> Cells:
        names = as_categories(values)
        index = pc.index_in(names, value_set=self.value_set).fill_null(self.other_cell)
        cells = np.asarray(index.to_numpy(zero_copy_only=False), dtype=np.intp)
        if names.null_count:
            cells[np.asarray(names.is_null().to_numpy(zero_copy_only=False))] = self.missing_cell
        return cells

    def count(self, values: Any) -> Counts:
        return np.bincount(self.cells(values), minlength=self.ncells).astype(np.int64)

    def count_groups(self, values: Any, groups: npt.NDArray[np.intp], ngroups: int) -> npt.NDArray[np.int64]:
        """Cell counts per group (an hour, say): one row of counts for each group 0..ngroups-1."""
        flat = np.bincount(groups * self.ncells + self.cells(values), minlength=ngroups * self.ncells)
        return flat.reshape(ngroups, self.ncells).astype(np.int64)

    def unseen_names(self, values: Any) -> Counter[str]:
        """How often each never-seen category came (the most frequent `UNSEEN_NAMED`)."""
        names = as_categories(values).drop_null()
        known = pc.is_in(names, value_set=self.value_set)
        zero = pa.array([n for n, seen in zip(self.names, self.never_seen, strict=False) if seen], pa.string())
        unseen = names.filter(pc.or_(pc.invert(known), pc.is_in(names, value_set=zero)))
        if not len(unseen):
            return Counter()
        tally = pc.value_counts(unseen)
        pairs = zip(tally.field("values").to_pylist(), tally.field("counts").to_pylist(), strict=True)
        return Counter(dict(Counter(dict(pairs)).most_common(UNSEEN_NAMED)))

    def bin_counts(self, counts: Counts) -> npt.NDArray[np.float64]:
        known = counts[: len(self.names)]
        binned = np.append(known, counts[self.other_cell]) if self.profile.open else known
        return binned.astype(np.float64)

    def unseen_count(self, counts: Counts) -> int:
        return int(counts[: self.other_cell + 1][self.never_seen].sum())

    def labels(self) -> tuple[str, ...]:
        return (*self.names, "other") if self.profile.open else tuple(self.names)


def grid_for(profile: NumericProfile | CategoricalProfile) -> NumericGrid | CategoricalGrid:
    return NumericGrid(profile) if isinstance(profile, NumericProfile) else CategoricalGrid(profile)
