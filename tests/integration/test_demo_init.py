"""`demo.init` end to end: files written, both models registered `@production`, loaded back, predicting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from foretell import demo
from foretell.demo.churn import CHURN_SIGNATURE
from foretell.demo.movies import MovieRecommender
from foretell.registry import SqliteRegistry, load_model

SIZES = {"customers": 3_000, "users": 600, "movies": 300}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("foretell-home")


@pytest.fixture(scope="module")
def registry(home: Path) -> SqliteRegistry:
    return SqliteRegistry(home)


@pytest.fixture(scope="module")
def summary(registry: SqliteRegistry, home: Path) -> demo.DemoSummary:
    return demo.init(registry, home / "demo", seed=7, **SIZES)


def test_writes_the_four_tables(summary: demo.DemoSummary, home: Path) -> None:
    folder = home / "demo"
    assert summary.folder == folder
    assert sorted(p.name for p in folder.iterdir()) == [
        "customers.parquet",
        "movies.parquet",
        "ratings.parquet",
        "users.parquet",
    ]
    assert pq.read_metadata(folder / "customers.parquet").num_rows == SIZES["customers"]
    assert pq.read_metadata(folder / "movies.parquet").num_rows == SIZES["movies"]
    ratings = pq.read_table(folder / "ratings.parquet")
    assert ratings.num_rows == summary.rows["ratings"]
    assert len(np.unique(ratings.column("user_id").to_numpy())) == SIZES["users"]
    assert summary.files == {name: folder / f"{name}.parquet" for name in ("customers", "movies", "ratings", "users")}
    assert pq.read_table(folder / "users.parquet").column("user_id").to_pylist() == list(range(1, SIZES["users"] + 1))


def test_summary_reports_versions_timings_and_holdout_metrics(summary: demo.DemoSummary) -> None:
    assert summary.churn.uri == "models:/churn@production"
    assert summary.movies.uri == "models:/movies@production"
    assert summary.churn.metrics["holdout_auc"] > 0.75
    assert summary.movies.metrics["hit_rate@10"] > 0
    assert summary.movies.metrics["rmse"] < 1.2
    assert 0 < summary.churn.train_seconds < 60 and 0 < summary.movies.train_seconds < 60
    lines = summary.describe()
    assert "models:/churn@production" in lines[1] and "AUC" in lines[1]
    assert "models:/movies@production" in lines[2] and "hit rate@10" in lines[2]
    as_dict = summary.to_dict()
    assert as_dict["rows"]["customers"] == SIZES["customers"]
    assert set(as_dict["models"]) == {"churn", "movies"}


def test_both_models_are_registered_with_their_signatures(summary: demo.DemoSummary, registry: SqliteRegistry) -> None:
    churn = registry.get("churn@production")
    assert churn.flavor == "sklearn"
    assert churn.signature == CHURN_SIGNATURE
    assert churn.version == summary.churn.info.version
    assert churn.metadata["holdout_auc"] == summary.churn.metrics["holdout_auc"]
    movies = registry.get("movies@production")
    assert movies.flavor == "python"
    assert movies.flavor_options == {"class": "foretell.demo.movies:MovieRecommender"}
    assert movies.signature == MovieRecommender.signature
    assert movies.description


def test_churn_model_loads_and_scores_customers(
    summary: demo.DemoSummary, registry: SqliteRegistry, home: Path
) -> None:
    model = load_model(registry, "churn@production")
    customers = pq.read_table(home / "demo" / "customers.parquet")
    predictions = model.predict_batch(customers.slice(0, 200), extra="ignore")
    scores = np.asarray(predictions.column("score"), dtype=float)
    assert scores.shape == (200,) and np.all((scores >= 0) & (scores <= 1))
    assert set(np.unique(predictions.column("label"))) <= {0, 1}
    one = customers.slice(0, 1).to_pylist()[0]
    row = model.predict(one, extra="ignore")
    assert row["score"] == pytest.approx(float(scores[0]), rel=1e-12)
    one["age"] = None  # a missing value the signature allows
    assert 0 <= model.predict(one, extra="ignore")["score"] <= 1


def test_movies_model_loads_and_recommends(summary: demo.DemoSummary, registry: SqliteRegistry, home: Path) -> None:
    model = load_model(registry, "movies@production")
    predictions = model.predict_batch([1, 2, 10**9], k=5)
    items = predictions.column("items")
    assert items.shape == (3, 5) and items.dtype == np.int64
    catalogue = set(pq.read_table(home / "demo" / "movies.parquet").column("movie_id").to_pylist())
    assert set(items.ravel().tolist()) <= catalogue
    assert len(model.predict(1)["items"]) == 10  # the signature's default k


def test_running_again_registers_new_versions_and_moves_the_alias(
    summary: demo.DemoSummary, registry: SqliteRegistry, home: Path
) -> None:
    before = (home / "demo" / "customers.parquet").read_bytes()
    again = demo.init(registry, home / "demo", seed=7, **SIZES)
    assert again.churn.info.version == summary.churn.info.version + 1
    assert registry.get("churn@production").version == again.churn.info.version
    assert registry.get("movies@production").version == summary.movies.info.version + 1
    assert (home / "demo" / "customers.parquet").read_bytes() == before  # same seed, same data
    assert not [p for p in (home / "demo").iterdir() if p.name.startswith(".")]  # no temp files left
