"""Explicit-feedback matrix factorization by alternating least squares, in plain numpy.

A rating is modelled as `global mean + user bias + movie bias + user · movie`. Holding
the movie side fixed, every user's factors and bias are an independent ridge regression
(and the other way round), so each half-step is many small least-squares problems. They
are solved in blocks: users with similar rating counts are padded to one length, their
normal equations built with one batched matmul and solved with one batched
`np.linalg.solve`. The work is proportional to the number of ratings, not users × movies.

Regularization is weighted by each row's rating count (ALS-WR, Zhou et al. 2008), which
lets one `reg` suit both a user with 20 ratings and a film with 1,000.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from threadpoolctl import threadpool_limits

__all__ = ["Factors", "solve_rows", "train_als"]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

#: Padded cells (rows × longest rating list) per block: ~16 MB of gathered factors at 32 factors.
_BLOCK_CELLS = 1 << 16


@dataclass(frozen=True)
class Factors:
    """A trained factorization. Row i of the user arrays is `user_ids[i]`; ids are sorted."""

    user_ids: Ints
    user_factors: Floats
    user_bias: Floats
    movie_ids: Ints
    movie_factors: Floats
    movie_bias: Floats
    movie_counts: Ints
    """How many training ratings each movie had: its popularity."""
    global_mean: float
    reg: float

    @property
    def n_factors(self) -> int:
        return int(self.movie_factors.shape[1])


@dataclass(frozen=True)
class _Block:
    """Rows solved together: for each, the other side's rows it was rated with, padded to one length."""

    rows: Ints
    other: Ints
    """(B, L) rows of the fixed side; 0 in padding slots."""
    values: Floats
    """(B, L) rating minus the global mean; 0 in padding slots."""
    valid: Floats
    """(B, L) 1.0 for a real rating, 0.0 for padding."""


def train_als(ratings: pa.Table, n_factors: int = 32, reg: float = 0.1, iters: int = 10, seed: int = 7) -> Factors:
    """Fit `Factors` to a `user_id, movie_id, rating` table."""
    if n_factors < 1 or iters < 1 or reg <= 0:
        raise ValueError(f"need n_factors >= 1, iters >= 1 and reg > 0; got {n_factors}, {iters}, {reg}")
    users = np.asarray(ratings.column("user_id").to_numpy(), dtype=np.int64)
    movies = np.asarray(ratings.column("movie_id").to_numpy(), dtype=np.int64)
    values = np.asarray(ratings.column("rating").to_numpy(), dtype=np.float64)
    if len(values) == 0:
        raise ValueError("cannot train on an empty ratings table")
    user_ids, user_rows = np.unique(users, return_inverse=True)
    movie_ids, movie_rows = np.unique(movies, return_inverse=True)
    mean = float(values.mean())
    centred = values - mean

    rng = np.random.default_rng(seed)
    user_factors = np.zeros((len(user_ids), n_factors))
    user_bias = np.zeros(len(user_ids))
    movie_factors = rng.normal(0.0, 0.1, (len(movie_ids), n_factors))
    movie_bias = np.zeros(len(movie_ids))
    user_blocks = _blocks(user_rows, movie_rows, centred, len(user_ids))
    movie_blocks = _blocks(movie_rows, user_rows, centred, len(movie_ids))
    # Thousands of tiny matmuls and solves: a multi-threaded BLAS spends more time waking its
    # threads than computing, the more so on a busy machine, so use one (docs/serving-batching.md,
    # "The same trap in training").
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(iters):
            _half_step(user_blocks, movie_factors, movie_bias, reg, user_factors, user_bias)
            _half_step(movie_blocks, user_factors, user_bias, reg, movie_factors, movie_bias)
        # End on a user step, so every user vector is exactly what folding that user's
        # ratings in against the final movie factors gives (see MovieRecommender.fold_in).
        _half_step(user_blocks, movie_factors, movie_bias, reg, user_factors, user_bias)
    return Factors(
        user_ids=user_ids,
        user_factors=user_factors,
        user_bias=user_bias,
        movie_ids=movie_ids,
        movie_factors=movie_factors,
        movie_bias=movie_bias,
        movie_counts=np.bincount(movie_rows, minlength=len(movie_ids)).astype(np.int64),
        global_mean=mean,
        reg=reg,
    )


def solve_rows(
    fixed_factors: Floats, fixed_bias: Floats, other: Ints, values: Floats, valid: Floats, reg: float
) -> Floats:
    """Ridge solutions for B rows at once: factors then bias, shape (B, n_factors + 1).

    `other`, `values` (ratings minus the global mean) and `valid` are (B, L) arrays as in
    a block; this is also how a new user is folded in against fixed movie factors.
    """
    return _solve(_with_bias_column(fixed_factors), fixed_bias, other, values, valid, reg)


def _with_bias_column(factors: Floats) -> Floats:
    """The fixed side's factors plus a column of ones: the bias is one more coefficient."""
    n, f = factors.shape
    augmented = np.empty((n, f + 1))
    augmented[:, :f] = factors
    augmented[:, f] = 1.0
    return augmented


def _solve(augmented: Floats, fixed_bias: Floats, other: Ints, values: Floats, valid: Floats, reg: float) -> Floats:
    X = augmented[other] * valid[..., None]
    y = (values - fixed_bias[other]) * valid
    Xt = X.transpose(0, 2, 1)
    counts = np.maximum(valid.sum(axis=1), 1.0)
    A = Xt @ X + (reg * counts)[:, None, None] * np.eye(augmented.shape[1])
    solved: Floats = np.linalg.solve(A, Xt @ y[..., None])[..., 0]
    return solved


def _half_step(
    blocks: list[_Block], fixed_factors: Floats, fixed_bias: Floats, reg: float, factors: Floats, bias: Floats
) -> None:
    augmented = _with_bias_column(fixed_factors)
    f = factors.shape[1]
    for block in blocks:
        solved = _solve(augmented, fixed_bias, block.other, block.values, block.valid, reg)
        factors[block.rows] = solved[:, :f]
        bias[block.rows] = solved[:, f]


def _blocks(rows: Ints, other: Ints, values: Floats, n_rows: int) -> list[_Block]:
    """Group rows by rating count, so padding each block to its longest list wastes little."""
    order = np.argsort(rows, kind="stable")
    other, values = other[order], values[order]
    counts = np.bincount(rows, minlength=n_rows)
    starts = np.cumsum(counts) - counts
    by_count = np.argsort(counts, kind="stable")
    by_count = by_count[counts[by_count] > 0]
    blocks: list[_Block] = []
    first = 0
    while first < len(by_count):
        # Ascending counts: the block's last row is its longest; grow while the padded size fits.
        end = first + 1
        while end < len(by_count) and (end + 1 - first) * counts[by_count[end]] <= _BLOCK_CELLS:
            end += 1
        members = by_count[first:end]
        length = int(counts[members[-1]])
        slots = np.arange(length)[None, :]
        valid = slots < counts[members][:, None]
        positions = np.where(valid, starts[members][:, None] + slots, 0)
        blocks.append(
            _Block(
                rows=members,
                other=np.where(valid, other[positions], 0),
                values=np.where(valid, values[positions], 0.0),
                valid=valid.astype(np.float64),
            )
        )
        first = end
    return blocks
