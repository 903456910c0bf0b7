"""Value domains end to end: a real server answering 400 naming the bound (infer and events), a real batch job
sending the row outside to its rejects with that reason, and a real redis-server stream dead-lettering the event."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import joblib
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moviekit import register_movies
from servekit import FEATURES, rows, server
from sklearn.linear_model import LogisticRegression
from test_events_stream import add, client, ratings_of, run_consumer, stream_url

import foretell
from foretell.adapters.outputs import classifier_outputs
from foretell.core.feature import Feature
from foretell.core.schema import Signature
from foretell.store.entities import Interactions
from foretell.store.entities_sqlite import SqliteEntityStore
from foretell.store.redis_stream import parse_stream_url

sys.path.insert(0, str(Path(__file__).parents[2] / "contract"))  # the throwaway redis-server of the store tests
import redis_server

STAMP = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
A_BOUND = "field 'a': above its domain's maximum 3 (domain -3:3); got float 99.0"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`clf` (feature `a` in -3:3) fed by `things`, `movies` fed by `users` whose ratings are 1:5."""
    home = tmp_path_factory.mktemp("domains-home")
    scratch = tmp_path_factory.mktemp("domains-models")
    x = rows(200, seed=3)
    joblib.dump(LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)), scratch / "clf.joblib")
    signature = Signature(tuple(Feature(n) for n in FEATURES), classifier_outputs([0, 1]))
    foretell.register(
        "clf", scratch / "clf.joblib", signature=signature, domains={"a": "-3:3"}, aliases=["production"], home=home
    )
    ratings = register_movies(home, scratch)
    things = pa.table(
        {"id": [f"T-{i}" for i in range(20)], **{n: rows(20, seed=4)[:, i] for i, n in enumerate(FEATURES)}}
    )
    entities = SqliteEntityStore(home / "entities.db")
    entities.load_features("things", "id", things, models=["clf"], at=STAMP)
    entities.load_interactions(
        "users", "user_id", ratings, Interactions("ratings", "movie_id", "rating"), models=["movies"], at=STAMP,
        domains={"rating": foretell.api.domain_options(["rating=1:5"])["rating"]},
    )  # fmt: skip
    return home


@pytest.fixture(scope="module")
def url(home: Path) -> Iterator[str]:
    with server(home, "clf@production", "movies@production") as base:
        yield base


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server.shared() as found:
        yield found


def infer(url: str, matrix: list[list[float]]) -> httpx.Response:
    body = {"inputs": [{"name": "input-0", "shape": [len(matrix), 4], "datatype": "FP64", "data": matrix}]}
    return httpx.post(f"{url}/v2/models/clf/infer", json=body, timeout=30)


def test_an_infer_outside_a_domain_is_400_naming_field_bound_and_value(url):
    refused = infer(url, [[0.5, 0.0, 0.0, 0.0], [99.0, 0.0, 0.0, 0.0]])
    assert refused.status_code == 400
    assert refused.json() == {"error": f"1 of 2 input row invalid: row 1, {A_BOUND}"}
    assert infer(url, [[3.0, 0.0, 0.0, 0.0], [-3.0, 1.0, 1.0, 1.0]]).status_code == 200  # the bounds are inside
    per_feature = {
        "inputs": [{"name": n, "shape": [1], "datatype": "FP64", "data": [99.0 if n == "a" else 0.0]} for n in FEATURES]
    }
    one = httpx.post(f"{url}/v2/models/clf/infer", json=per_feature, timeout=30)
    assert one.status_code == 400 and one.json() == {"error": f"1 of 1 input row invalid: row 0, {A_BOUND}"}


@pytest.mark.parametrize(
    ("value", "bound"), [(99, "above its domain's maximum 5"), (-3, "below its domain's minimum 1")]
)
def test_a_rating_event_outside_its_domain_is_400_naming_the_bound_and_changes_nothing(url, home, value, bound):
    before = ratings_of(home, 17)
    event = {"type": "rating", "user_id": 17, "movie_id": 424242, "rating": value}
    refused = httpx.post(f"{url}/v1/events", json=event, timeout=30)
    assert refused.status_code == 400
    assert refused.json() == {"error": f"entity table 'users': 'rating' {float(value)!r} is {bound} (domain 1:5)"}
    assert ratings_of(home, 17) == before
    accepted = httpx.post(f"{url}/v1/events", json={**event, "movie_id": 424243, "rating": 5}, timeout=30)
    assert accepted.status_code == 200, accepted.text
    assert ratings_of(home, 17)["424243"] == 5.0


def test_a_features_event_that_would_put_a_model_feature_outside_its_domain_is_400(url, home):
    refused = httpx.post(f"{url}/v1/events", json={"type": "features", "key": "T-3", "values": {"a": 99.0}}, timeout=30)
    assert refused.status_code == 400
    assert A_BOUND in refused.json()["error"]
    found = SqliteEntityStore(home / "entities.db").get("things", "T-3")
    assert found is not None and found.features["a"] == rows(20, seed=4)[3, 0]


def test_a_batch_job_sends_the_rows_outside_a_domain_to_its_rejects_with_the_reason(home, tmp_path):
    matrix = rows(1_000, seed=9)
    matrix[:, 0] = matrix[:, 0].clip(-3, 3)  # the bounds themselves are inside
    matrix[::250, 0] = 99.0
    path = tmp_path / "rows.parquet"
    pq.write_table(
        pa.table({"id": [f"r{i:04d}" for i in range(1_000)], **{n: matrix[:, i] for i, n in enumerate(FEATURES)}}), path
    )
    result = foretell.run_batch(
        "clf@production", path, tmp_path / "out", home=home, workers=1, chunk_rows=300, max_reject_ratio=0.01
    )
    assert (result.scored, result.rejected) == (996, 4)
    rejects = pq.read_table(tmp_path / "out" / "_rejects").sort_by("id")
    assert rejects.column("id").to_pylist() == ["r0000", "r0250", "r0500", "r0750"]
    assert rejects.column("reason").to_pylist() == [f"row {r}, {A_BOUND}" for r in (0, 250, 200, 150)]
    assert json.loads(rejects.column("values")[0].as_py())["a"] == 99.0
    assert pq.read_table(tmp_path / "out").num_rows == 996


def test_a_stream_event_outside_its_domain_is_dead_lettered_with_the_bound_and_its_neighbours_applied(home, redis_url):
    url = stream_url(redis_url)
    stream = parse_stream_url(url).stream
    ids = add(
        redis_url,
        stream,
        [
            {"type": "rating", "user_id": 21, "movie_id": 515151, "rating": 4},
            {"type": "rating", "user_id": 21, "movie_id": 515152, "rating": 99},
            {"type": "rating", "user_id": 22, "movie_id": 515151, "rating": 1},
        ],
    )
    consumer, lag = run_consumer(home, url)
    assert (consumer.progress.applied, consumer.progress.dead, lag["pending"]) == (2, 1, 0)
    letters = client(redis_url).xrange(f"{stream}:dead")
    assert [(e[b"entry_id"].decode(), e[b"reason"].decode()) for _, e in letters] == [
        (ids[1], "entity table 'users': 'rating' 99.0 is above its domain's maximum 5 (domain 1:5)")
    ]
    assert ratings_of(home, 21)["515151"] == 4.0 and "515152" not in ratings_of(home, 21)
    assert ratings_of(home, 22)["515151"] == 1.0
