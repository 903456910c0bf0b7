"""`MovieRecommender`: the movies demo model, a python-flavor class answering "top k films for this user".

Registered with `flavor_options={"class": "foretell.demo.movies:MovieRecommender"}`.
Scores are predicted ratings (`mean + user bias + movie bias + user · movie`), so a
score of 4.3 reads as "this user would give it about 4"; they are not clipped to 1–5,
so two strong matches keep their order. Films a user already rated are never
recommended back to them.

Users the model has never seen (cold start) get the same list: among the most-rated
tenth of the catalogue, the films with the best predicted rating for an average user,
scored by that rating. A handful of enthusiastic ratings cannot put an obscure film at
the top of that list, and once such a user rates a few films, `add_ratings` gives them
a taste of their own at once.

The data generation and the ALS training live in `movies_data` and `als`; they are
re-exported here so the whole movies demo reads as one module.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa

from foretell.core.feature import Feature
from foretell.core.schema import Output, Signature
from foretell.demo.als import Factors, solve_rows, train_als
from foretell.demo.movies_data import generate_movies, generate_ratings
from foretell.demo.users import KnownUsers, lookup
from foretell.errors import InvalidInput

__all__ = ["MovieRecommender", "generate_movies", "generate_ratings", "train_als"]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

DEFAULT_K = 10
ARTIFACT = "recommender.npz"
#: Users scored at once: bounds the (users × movies) score matrix at a few MB.
_CHUNK = 1024


@dataclass(frozen=True)
class _Catalogue:
    """The movie side of the factorization, fixed once trained."""

    ids: Ints
    factors: Floats
    bias: Floats
    counts: Ints
    global_mean: float
    reg: float

    @property
    def n_factors(self) -> int:
        return int(self.factors.shape[1])


class MovieRecommender:
    """Top-k films per user from an ALS factorization; see the module docstring for the rules."""

    signature: ClassVar[Signature] = Signature(
        inputs=(
            Feature("user_id", "int64"),
            # Optional: the user's ratings now, as JSON text {"movie id": rating, ...}. Given, they
            # replace what the model learned about the user (folded in, milliseconds); left out, the
            # trained taste is used. The hybrid server passes them from the user's entity row.
            Feature("ratings", "string", allow_missing=True, required=False),
        ),
        outputs=(
            Output("items", "topk_items", "int64", shape=(DEFAULT_K,)),
            Output("scores", "topk_scores", "float64", shape=(DEFAULT_K,)),
        ),
    )

    def __init__(self, factors: Factors, rated_indptr: Ints, rated_movies: Ints, rated_values: Floats) -> None:
        """`rated_*` is each user's ratings as CSR over `factors.user_ids` rows, films as catalogue rows."""
        self._movies = _Catalogue(
            factors.movie_ids,
            factors.movie_factors,
            factors.movie_bias,
            factors.movie_counts,
            factors.global_mean,
            factors.reg,
        )
        self._users = KnownUsers(
            factors.user_ids, factors.user_factors, factors.user_bias, rated_indptr, rated_movies, rated_values
        )
        self._writer = threading.Lock()
        self._cold_items, self._cold_scores = _cold_start(self._movies)

    @classmethod
    def from_ratings(cls, factors: Factors, ratings: pa.Table) -> MovieRecommender:
        """A recommender that knows what each user rated in `ratings` (normally the training table)."""
        users = np.asarray(ratings.column("user_id").to_numpy(), dtype=np.int64)
        rows, known = lookup(factors.user_ids, users)
        movie_rows = _movie_rows(factors.movie_ids, np.asarray(ratings.column("movie_id").to_numpy(), np.int64))
        rows, movie_rows = rows[known], movie_rows[known]
        values = np.asarray(ratings.column("rating").to_numpy(), dtype=np.float64)[known]
        order = np.lexsort((movie_rows, rows))
        counts = np.bincount(rows, minlength=len(factors.user_ids))
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(factors, indptr, movie_rows[order], values[order])

    @classmethod
    def fit(
        cls, ratings: pa.Table, *, n_factors: int = 32, reg: float = 0.1, iters: int = 10, seed: int = 7
    ) -> MovieRecommender:
        """Train ALS on `ratings` and remember what each user rated there."""
        return cls.from_ratings(train_als(ratings, n_factors=n_factors, reg=reg, iters=iters, seed=seed), ratings)

    # -- the python-flavor contract ------------------------------------------------------------------

    def save(self, folder: Path) -> Path:
        """Write `folder/recommender.npz` (plain arrays, no pickle) and return the folder."""
        folder.mkdir(parents=True, exist_ok=True)
        users, movies = self._users, self._movies
        np.savez(
            folder / ARTIFACT,
            user_ids=users.ids,
            user_factors=users.factors,
            user_bias=users.bias,
            rated_indptr=users.indptr,
            rated_movie_ids=movies.ids[users.movies],
            rated_values=users.ratings,
            movie_ids=movies.ids,
            movie_factors=movies.factors,
            movie_bias=movies.bias,
            movie_counts=movies.counts,
            global_mean=np.float64(movies.global_mean),
            reg=np.float64(movies.reg),
        )
        return folder

    @classmethod
    def load(cls, path: Path) -> MovieRecommender:
        path = Path(path)
        with np.load(path / ARTIFACT if path.is_dir() else path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        factors = Factors(
            user_ids=arrays["user_ids"],
            user_factors=arrays["user_factors"],
            user_bias=arrays["user_bias"],
            movie_ids=arrays["movie_ids"],
            movie_factors=arrays["movie_factors"],
            movie_bias=arrays["movie_bias"],
            movie_counts=arrays["movie_counts"],
            global_mean=float(arrays["global_mean"]),
            reg=float(arrays["reg"]),
        )
        movies = _movie_rows(factors.movie_ids, arrays["rated_movie_ids"])
        return cls(factors, arrays["rated_indptr"], movies, arrays["rated_values"])

    def predict(self, columns: Mapping[str, Any], k: int = DEFAULT_K) -> dict[str, Any]:
        """Top `k` unrated films per user: `items` (n, k) movie ids and `scores` (n, k), best first.

        A row that comes with `ratings` is scored from those ratings alone, folded in for this
        call (the model does not change); other rows use the trained taste. If a user has
        rated all but fewer than `k` films, the remaining slots hold movie id -1, score -inf.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        users = self._users  # one snapshot, even while add_ratings swaps in a new one
        user_ids = np.asarray(columns["user_id"], dtype=np.int64)
        given = _given_ratings(columns)
        n, n_movies = len(user_ids), len(self._movies.ids)
        width = min(k, n_movies)
        items = np.empty((n, width), dtype=np.int64)
        scores = np.empty((n, width), dtype=np.float64)
        rows, known = users.rows(user_ids)
        informed = np.zeros(n, dtype=bool)  # rows that came with ratings: those stand for the user
        informed[list(given)] = True
        cold = ~known & ~informed
        items[cold] = self._movies.ids[self._cold_items[:width]]
        scores[cold] = self._cold_scores[:width]
        positions = np.flatnonzero(known & ~informed)
        for start in range(0, len(positions), _CHUNK):
            at = positions[start : start + _CHUNK]
            top, best = _top_k(self._scores(users, rows[at]), width)
            items[at] = np.where(np.isneginf(best), -1, self._movies.ids[top])
            scores[at] = best
        for position, ratings in given.items():
            top, best = _top_k(self._scores_from(ratings)[None, :], width)
            items[position] = np.where(np.isneginf(best[0]), -1, self._movies.ids[top[0]])
            scores[position] = best[0]
        return {"items": items, "scores": scores}

    # -- what a user's taste looks like, and changing it ---------------------------------------------

    def predicted_ratings(self, user_ids: npt.ArrayLike, movie_ids: npt.ArrayLike) -> Floats:
        """The model's rating for each (user, movie) pair; unknown users get the average user's."""
        users = self._users
        rows, known = users.rows(np.asarray(user_ids, dtype=np.int64))
        movies = _movie_rows(self._movies.ids, np.asarray(movie_ids, dtype=np.int64))
        catalogue = self._movies
        taste = (users.factors[rows] * catalogue.factors[movies]).sum(axis=1) + users.bias[rows]
        result: Floats = catalogue.global_mean + catalogue.bias[movies] + np.where(known, taste, 0.0)
        return result

    def fold_in(self, ratings: Mapping[int, float]) -> Floats:
        """The vector (factors, then bias) that best explains these ratings, movie factors held fixed.

        This is one ALS user step for one user: milliseconds, so a new rating can change
        recommendations while the user is still on the page. Training ends on this same
        step, so folding in a trained user's ratings gives back their trained vector.

        The ratings are explicit feedback, and read as such: three 5s and nothing else say
        as much about how generously the user rates (the bias) as about taste, so they lift
        similar films a little; 5s for sci-fi next to 1s for romance lift sci-fi a lot.
        """
        catalogue = self._movies
        if not ratings:
            return np.zeros(catalogue.n_factors + 1)
        movies, values = _parse_ratings(catalogue.ids, ratings)
        centred = (values - catalogue.global_mean)[None, :]
        ones = np.ones((1, len(movies)))
        vector: Floats = solve_rows(catalogue.factors, catalogue.bias, movies[None, :], centred, ones, catalogue.reg)[0]
        return vector

    def set_user(self, user_id: int, vector: Floats, ratings: Mapping[int, float]) -> None:
        """Install a user's vector and full set of ratings (replacing or inserting the user)."""
        movies, values = _parse_ratings(self._movies.ids, ratings)
        vector = np.asarray(vector, dtype=np.float64)
        if vector.shape != (self._movies.n_factors + 1,):
            raise InvalidInput(f"a user vector has {self._movies.n_factors + 1} values; got shape {vector.shape}")
        with self._writer:
            self._users = self._users.with_user(int(user_id), vector, movies, values)

    def add_ratings(self, user_id: int, ratings: Mapping[int, float]) -> Floats:
        """Record new ratings for a user (new or known), refold their vector, and return it.

        A film rated again keeps the newest rating. Readers keep predicting from the old
        state until the new one is swapped in whole, so no request sees half an update.
        """
        with self._writer:
            users = self._users
            rows, known = users.rows(np.array([user_id], dtype=np.int64))
            merged: dict[int, float] = {}
            if known[0]:
                movies, values = users.rated(int(rows[0]))
                merged = dict(zip(self._movies.ids[movies].tolist(), values.tolist(), strict=True))
            merged.update({int(m): float(r) for m, r in ratings.items()})
            vector = self.fold_in(merged)
            movie_rows, values = _parse_ratings(self._movies.ids, merged)
            self._users = users.with_user(int(user_id), vector, movie_rows, values)
        return vector

    def _scores_from(self, ratings: Mapping[int, float]) -> Floats:
        """One row of scores for a user known only by these ratings (folded in), rated films excluded.

        Films the catalogue does not know (added after training) and ratings that are not
        finite numbers are left out: they say nothing this model can use.
        """
        catalogue = self._movies
        usable = {m: r for m, r in ratings.items() if math.isfinite(r)}
        _, found = lookup(catalogue.ids, np.fromiter(usable, dtype=np.int64, count=len(usable)))
        usable = {m: r for (m, r), ok in zip(usable.items(), found.tolist(), strict=True) if ok}
        vector = self.fold_in(usable)
        f = catalogue.n_factors
        scores: Floats = catalogue.factors @ vector[:f] + catalogue.bias + catalogue.global_mean + vector[f]
        if usable:
            scores[_parse_ratings(catalogue.ids, usable)[0]] = -np.inf
        return scores

    def _scores(self, users: KnownUsers, rows: Ints) -> Floats:
        catalogue = self._movies
        scores: Floats = users.factors[rows] @ catalogue.factors.T
        scores += catalogue.bias + catalogue.global_mean
        scores += users.bias[rows, None]
        lo, hi = users.indptr[rows], users.indptr[rows + 1]
        lengths = hi - lo
        owner = np.repeat(np.arange(len(rows)), lengths)
        within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        scores[owner, users.movies[np.repeat(lo, lengths) + within]] = -np.inf
        return scores


_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


def _given_ratings(columns: Mapping[str, Any]) -> dict[int, dict[int, float]]:
    """Row position → {movie id: rating} for the rows that came with ratings (JSON text)."""
    try:
        texts = columns["ratings"]
    except KeyError:
        return {}
    given: dict[int, dict[int, float]] = {}
    for position, text in enumerate(texts):
        if text is None:
            continue
        try:
            parsed = orjson.loads(text)
            pairs = {int(m): float(r) for m, r in parsed.items()}
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            continue  # not a map of movie id to rating: nothing usable, the trained taste stands
        # An id no int64 holds is no film of the catalogue, and a NaN or infinite rating says nothing: both are
        # left out, as unknown films are (before, the id failed the whole batch with an OverflowError).
        given[position] = {m: r for m, r in pairs.items() if _INT64_MIN <= m <= _INT64_MAX and math.isfinite(r)}
    return given


def _top_k(scores: Floats, k: int) -> tuple[Ints, Floats]:
    """Column indices and values of each row's k largest scores, best first."""
    if k < scores.shape[1]:
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        top = np.broadcast_to(np.arange(scores.shape[1]), scores.shape).copy()
    best = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-best, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(best, order, axis=1)


def _cold_start(catalogue: _Catalogue) -> tuple[Ints, Floats]:
    """Catalogue rows for unknown users, best first, and their scores (see the module docstring)."""
    n = len(catalogue.ids)
    scores = catalogue.global_mean + catalogue.bias
    pool = np.zeros(n, dtype=bool)
    pool[np.argsort(-catalogue.counts, kind="stable")[: max(100, n // 10)]] = True
    order = np.lexsort((-scores, ~pool))
    return order.astype(np.int64), scores[order]


def _movie_rows(movie_ids: Ints, wanted: Ints) -> Ints:
    rows, known = lookup(movie_ids, wanted)
    if not known.all():
        raise InvalidInput(f"movie id(s) {sorted(set(wanted[~known].tolist()))[:5]} are not in the catalogue")
    return rows


def _parse_ratings(movie_ids: Ints, ratings: Mapping[int, float]) -> tuple[Ints, Floats]:
    ids = np.fromiter((int(m) for m in ratings), dtype=np.int64, count=len(ratings))
    values = np.fromiter((float(r) for r in ratings.values()), dtype=np.float64, count=len(ratings))
    if not np.isfinite(values).all():
        raise InvalidInput("ratings must be finite numbers")
    return _movie_rows(movie_ids, ids), values
