"""Quick holdout checks that the demo models learned something, and how much.

The recommender is judged the way a user would judge it: hide one film each user rated,
train on the rest, and count how often a film they liked (4 stars or more) shows up in
their top 10. The baseline is the oldest recommender there is, "the most popular films
you have not seen yet"; a model that cannot beat it is not worth serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from foretell.demo.movies import MovieRecommender

__all__ = ["RecommenderScore", "churn_auc", "evaluate_recommender", "holdout_split", "popularity_hit_rate"]

Ints = npt.NDArray[np.int64]

LIKED = 4.0


@dataclass(frozen=True)
class RecommenderScore:
    """Held-out quality: rating error, and hit rate at k against the popularity baseline."""

    rmse: float
    hit_rate: float
    popularity_hit_rate: float
    k: int
    users: int
    """Users whose held-out film was one they liked: the hit rates are over these."""

    def to_dict(self) -> dict[str, float | int]:
        return {
            "rmse": round(self.rmse, 4),
            f"hit_rate@{self.k}": round(self.hit_rate, 4),
            f"popularity_hit_rate@{self.k}": round(self.popularity_hit_rate, 4),
            "holdout_users": self.users,
        }


def holdout_split(ratings: pa.Table, seed: int = 7) -> tuple[pa.Table, pa.Table]:
    """(train, holdout): one rating chosen at random from every user with at least two."""
    users = np.asarray(ratings.column("user_id").to_numpy(), dtype=np.int64)
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(len(users))
    _, first, counts = np.unique(users[shuffled], return_index=True, return_counts=True)
    held = np.zeros(len(users), dtype=bool)
    held[shuffled[first[counts >= 2]]] = True
    return ratings.filter(pa.array(~held)), ratings.filter(pa.array(held))


def evaluate_recommender(model: MovieRecommender, train: pa.Table, holdout: pa.Table, k: int = 10) -> RecommenderScore:
    users = np.asarray(holdout.column("user_id").to_numpy(), dtype=np.int64)
    movies = np.asarray(holdout.column("movie_id").to_numpy(), dtype=np.int64)
    ratings = np.asarray(holdout.column("rating").to_numpy(), dtype=np.float64)
    predicted = np.clip(model.predicted_ratings(users, movies), 1.0, 5.0)
    rmse = float(np.sqrt(np.mean((predicted - ratings) ** 2)))
    liked = ratings >= LIKED
    items = model.predict({"user_id": users[liked]}, k=k)["items"]
    hits = (items == movies[liked][:, None]).any(axis=1)
    baseline = popularity_hit_rate(train, users[liked], movies[liked], k)
    return RecommenderScore(rmse, float(hits.mean()), baseline, k, int(liked.sum()))


def popularity_hit_rate(train: pa.Table, users: Ints, movies: Ints, k: int = 10) -> float:
    """How often `movies[i]` is among the `k` most-rated films `users[i]` has not rated in `train`."""
    train_users = np.asarray(train.column("user_id").to_numpy(), dtype=np.int64)
    train_movies = np.asarray(train.column("movie_id").to_numpy(), dtype=np.int64)
    catalogue, counts = np.unique(train_movies, return_counts=True)
    most_seen = int(np.bincount(np.unique(train_users, return_inverse=True)[1]).max())
    # Only the first k + (most films one user rated) popular films can ever make someone's top k.
    candidates = catalogue[np.argsort(-counts, kind="stable")[: k + most_seen]]
    pair = np.add.outer(users * (catalogue.max() + 1), candidates)
    seen = np.isin(pair, train_users * (catalogue.max() + 1) + train_movies)
    rank = np.cumsum(~seen, axis=1)
    shown = ~seen & (rank <= k)
    hits = (shown & (candidates[None, :] == movies[:, None])).any(axis=1)
    return float(hits.mean())


def churn_auc(model: Any, features: npt.NDArray[np.float64], churned: npt.ArrayLike) -> float:
    """Area under the ROC curve of the model's churn probability."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(churned, model.predict_proba(features)[:, 1]))
