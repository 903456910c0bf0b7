"""The demo: generated data and two trained models, registered as `churn@production` and `movies@production`.

`init` writes `customers.parquet`, `movies.parquet` and `ratings.parquet`, trains a
gradient-boosting churn classifier and an ALS movie recommender on them, checks each
on held-out data, and registers both. Everything is generated from fixed seeds: no
downloads, and the same arguments give the same data. Running it again registers new
versions and moves the `production` aliases to them.

Each model is trained on all but a holdout (a fifth of the customers; one rating per
user) and the metrics reported are on that holdout, so they say how the registered
model does on data it never saw.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from foretell.compile import describe_outcome
from foretell.core.model import ModelInfo
from foretell.demo.churn import CHURN_SIGNATURE, features_matrix, generate_customers, train_churn
from foretell.demo.evaluation import churn_auc, evaluate_recommender, holdout_split
from foretell.demo.movies import MovieRecommender, generate_movies, generate_ratings
from foretell.registry.base import Registry
from foretell.registry.loader import compile_model, profile_registered

__all__ = ["ALIAS", "DemoModel", "DemoSummary", "init"]

ALIAS = "production"
#: The churn model trains on at most this many customers (and is checked on at most a quarter
#: as many): enough for its 31 features, and it keeps `demo init --customers 1000000`, which
#: makes a population worth a nightly batch job, to seconds of training.
TRAIN_ROWS_CAP = 50_000
MOVIES_CLASS = "foretell.demo.movies:MovieRecommender"


@dataclass(frozen=True)
class DemoModel:
    """One registered demo model: its version, how long it trained, how it did on the holdout."""

    info: ModelInfo
    train_seconds: float
    metrics: Mapping[str, float]
    compiled: Mapping[str, Any] | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.info.name}@{ALIAS}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "version": self.info.version,
            "train_seconds": round(self.train_seconds, 3),
            "metrics": dict(self.metrics),
            "compiled": dict(self.compiled) if self.compiled is not None else None,
        }


@dataclass(frozen=True)
class DemoSummary:
    """What `init` generated, where it wrote it, and what it registered."""

    folder: Path
    files: Mapping[str, Path]
    rows: Mapping[str, int]
    generate_seconds: float
    churn: DemoModel
    movies: DemoModel

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "files": {name: str(path) for name, path in self.files.items()},
            "rows": dict(self.rows),
            "generate_seconds": round(self.generate_seconds, 3),
            "models": {"churn": self.churn.to_dict(), "movies": self.movies.to_dict()},
        }

    def describe(self) -> list[str]:
        """A few lines for a person: what was generated, what was registered, how good it is."""
        rows = self.rows
        churn, movies = self.churn, self.movies
        return [
            f"Generated {rows['customers']:,} customers, {rows['movies']:,} movies and "
            f"{rows['ratings']:,} ratings by {rows['users']:,} users in {self.generate_seconds:.1f} s "
            f"into {self.folder}",
            f"{churn.uri} is version {churn.info.version}: gradient boosting, trained in "
            f"{churn.train_seconds:.1f} s, holdout AUC {churn.metrics['holdout_auc']:.3f}",
            f"{movies.uri} is version {movies.info.version}: ALS recommender, trained in "
            f"{movies.train_seconds:.1f} s, hit rate@10 {movies.metrics['hit_rate@10']:.3f} "
            f"(popular films: {movies.metrics['popularity_hit_rate@10']:.3f}), RMSE {movies.metrics['rmse']:.3f}",
            *([f"{churn.uri}: {describe_outcome(churn.compiled)}"] if churn.compiled else []),
        ]


def init(
    registry: Registry,
    folder: Path,
    *,
    customers: int = 20_000,
    users: int = 5_000,
    movies: int = 1_500,
    seed: int = 7,
) -> DemoSummary:
    """Generate the demo data into `folder`, train both models, and register them `@production`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    customer_table = generate_customers(customers, seed)
    movie_table = generate_movies(movies, seed)
    rating_table = generate_ratings(users, movie_table, seed)
    user_table = pa.table({"user_id": pa.array(np.arange(1, users + 1), pa.int64())})
    tables = {"customers": customer_table, "movies": movie_table, "ratings": rating_table, "users": user_table}
    files = {name: _write_parquet(table, folder / f"{name}.parquet") for name, table in tables.items()}
    generate_seconds = time.perf_counter() - started

    with tempfile.TemporaryDirectory(prefix="foretell-demo-") as scratch:
        churn = _churn(registry, customer_table, Path(scratch), seed)
        recommender = _movies(registry, rating_table, user_table, Path(scratch), seed)
    return DemoSummary(
        folder=folder,
        files=files,
        rows={
            "customers": customer_table.num_rows,
            "movies": movie_table.num_rows,
            "users": users,
            "ratings": rating_table.num_rows,
        },
        generate_seconds=generate_seconds,
        churn=churn,
        movies=recommender,
    )


def _churn(registry: Registry, customers: pa.Table, scratch: Path, seed: int) -> DemoModel:
    import joblib

    rng = np.random.default_rng(seed)
    is_holdout = rng.random(customers.num_rows) < 0.2
    train, holdout = customers.filter(pa.array(~is_holdout)), customers.filter(pa.array(is_holdout))
    # Customers are generated independently, so the first rows are as good a sample as any.
    train, holdout = train.slice(0, TRAIN_ROWS_CAP), holdout.slice(0, TRAIN_ROWS_CAP // 4)
    started = time.perf_counter()
    model = train_churn(train, seed)
    seconds = time.perf_counter() - started
    churned = holdout.column("churned").to_numpy()
    metrics = {
        "holdout_auc": round(churn_auc(model, features_matrix(holdout), churned), 4),
        "churn_rate": round(float(customers.column("churned").to_numpy().mean()), 4),
        "train_rows": train.num_rows,
        "holdout_rows": holdout.num_rows,
    }
    path = scratch / "churn.joblib"
    joblib.dump(model, path)
    info = registry.register(
        "churn",
        path,
        flavor="sklearn",
        signature=CHURN_SIGNATURE,
        description="Demo: will an online-store customer churn? HistGradientBoosting on 31 generated features.",
        metadata={"demo": True, "seed": seed, **metrics},
        aliases=[ALIAS],
    )
    # As `foretell models register` does: compiled to native code, proven on real holdout rows
    # topped up with generated edge cases; batch jobs and servers then load the compiled one.
    compiled = compile_model(registry, info.uri, sample=holdout.drop(["customer_id", "churned"]))
    # The reference drift is measured against: customers the model did not train on, like tomorrow's.
    profile_registered(registry, info, sample=holdout.drop(["customer_id", "churned"]))
    return DemoModel(info, seconds, metrics, compiled.to_dict())


def _movies(registry: Registry, ratings: pa.Table, users: pa.Table, scratch: Path, seed: int) -> DemoModel:
    train, holdout = holdout_split(ratings, seed)
    started = time.perf_counter()
    model = MovieRecommender.fit(train, seed=seed)
    seconds = time.perf_counter() - started
    metrics: dict[str, float] = {**evaluate_recommender(model, train, holdout).to_dict(), "train_rows": train.num_rows}
    path = model.save(scratch / "movies")
    info = registry.register(
        "movies",
        path,
        flavor="python",
        signature=MovieRecommender.signature,
        flavor_options={"class": MOVIES_CLASS},
        description="Demo: top-10 films for a user. ALS matrix factorization of generated ratings.",
        metadata={"demo": True, "seed": seed, **metrics},
        aliases=[ALIAS],
    )
    profile_registered(registry, info, sample=users)  # every user's top 10, as a nightly batch would score them
    return DemoModel(info, seconds, metrics)


def _write_parquet(table: pa.Table, path: Path) -> Path:
    """Write beside the target, fsync, then rename: a reader sees the old file or the new, never half."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as out:
            pq.write_table(table, out)
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
