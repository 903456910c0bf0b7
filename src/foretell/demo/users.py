"""`KnownUsers`: every user a recommender knows, their taste vectors and what they rated.

It is an immutable value: changing one user builds a new `KnownUsers` (copying the
arrays, milliseconds at demo sizes), which the recommender swaps in with one assignment.
A prediction running at that moment keeps the snapshot it started with, so no request
ever sees a user half updated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["KnownUsers", "lookup"]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class KnownUsers:
    """Every known user: sorted ids, their factors and bias, and what each rated (CSR by row)."""

    ids: Ints
    factors: Floats
    bias: Floats
    indptr: Ints
    movies: Ints
    """Catalogue rows (not ids) of the rated films."""
    ratings: Floats

    def rows(self, user_ids: Ints) -> tuple[Ints, npt.NDArray[np.bool_]]:
        return lookup(self.ids, user_ids)

    def rated(self, row: int) -> tuple[Ints, Floats]:
        lo, hi = self.indptr[row], self.indptr[row + 1]
        return self.movies[lo:hi], self.ratings[lo:hi]

    def with_user(self, user_id: int, vector: Floats, movies: Ints, ratings: Floats) -> KnownUsers:
        """A copy with this user's vector and ratings replaced, or the user inserted in id order."""
        f = self.factors.shape[1]
        pos = int(np.searchsorted(self.ids, user_id))
        if pos < len(self.ids) and self.ids[pos] == user_id:
            factors, bias, indptr = self.factors.copy(), self.bias.copy(), self.indptr.copy()
            factors[pos], bias[pos] = vector[:f], vector[f]
            lo, hi = int(indptr[pos]), int(indptr[pos + 1])
            indptr[pos + 1 :] += len(movies) - (hi - lo)
            ids = self.ids
        else:
            ids = np.insert(self.ids, pos, user_id)
            factors = np.insert(self.factors, pos, vector[:f], axis=0)
            bias = np.insert(self.bias, pos, vector[f])
            lo = hi = int(self.indptr[pos])
            indptr = np.insert(self.indptr, pos + 1, lo)
            indptr[pos + 1 :] += len(movies)
        return KnownUsers(
            ids=ids,
            factors=factors,
            bias=bias,
            indptr=indptr,
            movies=np.concatenate([self.movies[:lo], movies, self.movies[hi:]]),
            ratings=np.concatenate([self.ratings[:lo], ratings, self.ratings[hi:]]),
        )


def lookup(sorted_ids: Ints, wanted: Ints) -> tuple[Ints, npt.NDArray[np.bool_]]:
    """Row of each wanted id in a sorted id array, and whether it is there at all."""
    if len(sorted_ids) == 0:
        return np.zeros(len(wanted), np.int64), np.zeros(len(wanted), dtype=bool)
    rows = np.minimum(np.searchsorted(sorted_ids, wanted), len(sorted_ids) - 1).astype(np.int64)
    return rows, sorted_ids[rows] == wanted
