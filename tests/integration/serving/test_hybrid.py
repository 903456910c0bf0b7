"""Hybrid serving against a real server: precomputed lookups, live fallback, events, ordering rules."""

from __future__ import annotations

import concurrent.futures
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import joblib
import pyarrow as pa
import pytest
from moviekit import register_movies
from servekit import FEATURES, rows, server
from sklearn.linear_model import LogisticRegression

import foretell
from foretell.adapters.outputs import classifier_outputs
from foretell.core.feature import Feature
from foretell.core.schema import Signature
from foretell.store import SqliteStore
from foretell.store.entities import Interactions
from foretell.store.entities_sqlite import SqliteEntityStore

NOW = datetime.now(UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture(scope="module")
def hybrid_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("hybrid-home")
    scratch = tmp_path_factory.mktemp("hybrid-models")
    x = rows(400, seed=3)
    path = scratch / "clf.joblib"
    joblib.dump(LogisticRegression().fit(x, (x[:, 0] + x[:, 1] > 0).astype(int)), path)
    signature = Signature(tuple(Feature(n) for n in FEATURES), classifier_outputs([0, 1]))
    foretell.register("clf", path, signature=signature, aliases=["production"], home=home)
    ratings = register_movies(home, scratch)
    things = pa.table(
        {"id": [f"T-{i}" for i in range(100)], **{n: rows(100, seed=4)[:, i] for i, n in enumerate(FEATURES)}}
    )
    entities = SqliteEntityStore(home / "entities.db")
    entities.load_features("things", "id", things, models=["clf"], at=stamp(NOW))
    entities.load_interactions(
        "users", "user_id", ratings, Interactions("ratings", "movie_id", "rating"), models=["movies"], at=stamp(NOW)
    )
    # Last night's batch: T-0..T-49 ten minutes ago (fresh), T-50..T-59 an hour ago (stale: max_age 30m).
    model = foretell.load("clf@production", home=home)
    predictions = model.predict_batch(things.select(FEATURES))
    store = SqliteStore(home / "store.db")
    generation = store.begin_generation("clf")
    batch = [(f"T-{i}", predictions[i], 1, stamp(NOW - timedelta(minutes=10))) for i in range(50)]
    batch += [(f"T-{i}", predictions[i], 1, stamp(NOW - timedelta(hours=1))) for i in range(50, 60)]
    store.write_batch("clf", generation, batch)
    store.publish("clf", generation)
    (home / "serve.toml").write_text('[hybrid.clf]\nmax_age = "30m"\n')
    return home


@pytest.fixture(scope="module")
def url(hybrid_home: Path):
    with server(
        hybrid_home, "clf@production", "movies@production", "--config", str(hybrid_home / "serve.toml")
    ) as base:
        yield base


def get(url: str, model: str, key: str, **params: str) -> httpx.Response:
    return httpx.get(f"{url}/v1/models/{model}/predictions/{key}", params=params, timeout=30)


def event(url: str, body: dict) -> httpx.Response:
    return httpx.post(f"{url}/v1/events", json=body, timeout=30)


def expected_score(home: Path, features: list[float]) -> float:
    model = foretell.load("clf@production", home=home)
    return float(model.predict(dict(zip(FEATURES, features, strict=True)))["score"])


def test_a_fresh_precomputed_prediction_is_returned_as_it_is(url, hybrid_home):
    answer = get(url, "clf", "T-3").json()
    assert answer["source"] == "precomputed" and answer["generation"] == 1 and not answer["stale"]
    assert answer["prediction"]["score"] == pytest.approx(expected_score(hybrid_home, rows(100, seed=4)[3].tolist()))
    # Stamped ten minutes before NOW (when this module was collected, which may be minutes ago in a long run).
    expected_age = 600 + (datetime.now(UTC) - NOW).total_seconds()
    assert answer["age_seconds"] == pytest.approx(expected_age, abs=5)


def test_a_stale_prediction_is_replaced_by_a_live_one_and_written_back(url):
    first = get(url, "clf", "T-55").json()
    assert first["source"] == "live" and first["generation"] is None
    again = get(url, "clf", "T-55").json()  # now read back from the store: the write-back
    assert again["source"] == "live" and again["computed_at"] == first["computed_at"]


def test_fresh_true_forces_a_live_prediction(url):
    answer = get(url, "clf", "T-4", fresh="true").json()
    assert answer["source"] == "live" and answer["age_seconds"] == 0


def test_a_key_with_no_prediction_and_no_features_is_404_saying_so(url):
    response = get(url, "clf", "T-999")
    assert response.status_code == 404
    assert "no row for it" in response.json()["error"] and "'things'" in response.json()["error"]


@pytest.mark.parametrize("key", ["acct/7", "dir/", "a b?c#d&e=f", "ünï/çødé", "%2F"])
def test_a_key_holding_a_slash_or_odd_characters_is_found_by_its_percent_encoded_path(url, hybrid_home, key):
    values = dict(zip(FEATURES, rows(1, seed=9)[0].tolist(), strict=True))
    assert event(url, {"type": "features", "key": key, "values": values}).json()["applied"]
    response = httpx.get(f"{url}/v1/models/clf/predictions/{quote(key, safe='')}", timeout=30)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["key"] == key and answer["source"] == "live"
    assert answer["prediction"]["score"] == pytest.approx(expected_score(hybrid_home, list(values.values())))


def test_a_features_event_changes_the_next_lookup_and_is_applied_once(url, hybrid_home):
    before = get(url, "clf", "T-7").json()["prediction"]["score"]
    body = {"type": "features", "key": "T-7", "values": {"a": 3.0, "b": 3.0}, "event_id": "feat-7"}
    applied = event(url, body).json()
    assert applied["applied"] and applied["entity"] == "things" and applied["refreshed"][0]["model"] == "clf"
    after = get(url, "clf", "T-7").json()
    features = rows(100, seed=4)[7].tolist()
    features[:2] = [3.0, 3.0]
    assert after["source"] == "live" and after["prediction"]["score"] == pytest.approx(
        expected_score(hybrid_home, features)
    )
    assert after["prediction"]["score"] != pytest.approx(before)
    again = event(url, {**body, "values": {"a": -3.0}}).json()  # redelivered with the same id
    assert again["duplicate"] and not again["applied"]
    assert get(url, "clf", "T-7").json()["prediction"]["score"] == after["prediction"]["score"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"type": "features", "key": "T-8", "values": {"a": "lots"}}, "model 'clf' refuses"),
        ({"type": "features", "key": "T-8", "values": {"zzz": 1}}, "no features table has the column(s) ['zzz']"),
        ({"type": "features", "key": "T-8"}, "needs 'values'"),
        ({"type": "rating", "user_id": 1, "movie_id": 2}, "fits no interactions table"),
        ({"type": "rating", "user_id": 1, "movie_id": 2, "rating": "five"}, "must be a finite number"),
        ({"key": "T-8"}, "needs a 'type'"),
        ({"type": "features", "key": True, "values": {"a": 1}}, "'key' must be an id"),
    ],
)
def test_bad_events_get_400_and_change_nothing(url, body, message):
    before = get(url, "clf", "T-8", fresh="true").json()["prediction"]
    response = event(url, body)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]
    assert get(url, "clf", "T-8", fresh="true").json()["prediction"] == before


def test_malformed_json_event_is_400(url):
    response = httpx.post(f"{url}/v1/events", content=b"{nope", timeout=30)
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]


def test_rating_events_refresh_a_users_recommendations_at_once(url):
    first = get(url, "movies", "17").json()
    top = first["prediction"]["items"][0]
    applied = event(url, {"type": "rating", "user_id": 17, "movie_id": top, "rating": 1})
    assert applied.status_code == 200, applied.text
    assert applied.json()["refreshed"][0]["prediction"]["items"][0] != top
    after = get(url, "movies", "17").json()
    assert after["source"] == "live" and top not in after["prediction"]["items"]  # rated films are not offered


def test_k_cuts_a_stored_top_k_and_asks_the_model_for_more(url):
    ten = get(url, "movies", "18").json()
    five = get(url, "movies", "18", k="5").json()
    assert five["prediction"]["items"] == ten["prediction"]["items"][:5] and five["source"] == ten["source"]
    twenty = get(url, "movies", "18", k="20").json()
    assert len(twenty["prediction"]["items"]) == 20 and twenty["source"] == "live"
    assert get(url, "clf", "T-1", k="5").status_code == 400  # not a recommender


def test_batch_get_mixes_precomputed_live_and_missing(url):
    response = httpx.post(
        f"{url}/v1/models/clf/predictions:batchGet", json={"keys": ["T-1", "T-56", "T-999", "T-2"]}, timeout=30
    )
    body = response.json()
    assert [p["key"] for p in body["predictions"]] == ["T-1", "T-56", "T-2"]
    assert [p["source"] for p in body["predictions"]] == ["precomputed", "live", "precomputed"]
    assert body["missing"] == ["T-999"]
    assert httpx.post(f"{url}/v1/models/clf/predictions:batchGet", json={"keys": []}).status_code == 400
    assert httpx.post(f"{url}/v1/models/nope/predictions:batchGet", json={"keys": ["x"]}).status_code == 404


def test_a_live_write_back_is_not_replaced_by_an_older_generation_published_later(url, hybrid_home):
    live = get(url, "clf", "T-9", fresh="true").json()
    store = SqliteStore(hybrid_home / "store.db")
    generation = store.begin_generation("clf")
    old = stamp(NOW - timedelta(minutes=5))  # computed before the live prediction, published after it
    store.write_batch(
        "clf", generation, [(f"T-{i}", {"score": 0.5, "label": 1, "proba": [0.5, 0.5]}, 1, old) for i in range(50)]
    )
    store.publish("clf", generation)
    after = get(url, "clf", "T-9").json()
    assert after["source"] == "live" and after["computed_at"] == live["computed_at"]
    assert get(url, "clf", "T-10").json()["generation"] == generation  # the others come from the new generation


def test_two_concurrent_events_on_one_user_are_both_applied(url, hybrid_home):
    movies = get(url, "movies", "21", k="40").json()["prediction"]["items"][20:22]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        codes = list(
            pool.map(
                lambda movie: event(url, {"type": "rating", "user_id": 21, "movie_id": movie, "rating": 5}).status_code,
                movies,
            )
        )
    assert codes == [200, 200]
    user = SqliteEntityStore(hybrid_home / "entities.db").get("users", "21")
    assert user is not None
    ratings = user.features["ratings"]
    assert {str(m) for m in movies} <= set(ratings)
    items = get(url, "movies", "21", k="40").json()["prediction"]["items"]
    assert not set(movies) & set(items)  # the last refresh saw both ratings


def test_lookups_are_counted_in_metrics(url):
    get(url, "clf", "T-1")
    text = httpx.get(f"{url}/metrics").text
    assert 'foretell_requests_total{endpoint="lookup",model="clf",status="200",transport="http"}' in text


def test_concurrent_lookups_and_batch_gets_each_get_their_own_keys(url, hybrid_home):
    """64 clients at once: the reads that share a thread hop hand every request exactly its keys."""
    store = SqliteStore(hybrid_home / "store.db")
    keys = [f"T-{i}" for i in range(50)]  # fresh precomputed predictions: no live fallback in the way
    expected = {key: found.prediction for key, found in store.get_many("clf", keys).items()}

    def client(seed: int) -> list[tuple[str, object]]:
        answers: list[tuple[str, object]] = []
        with httpx.Client(base_url=url, timeout=30) as http:
            for i in range(12):
                key = keys[(seed * 7 + i * 13) % len(keys)]
                if i % 3:
                    answer = http.get(f"/v1/models/clf/predictions/{key}").json()
                    answers.append((key, (answer["key"], answer["prediction"])))
                else:
                    asked = [key, "T-999", keys[(seed + i) % len(keys)]]
                    body = http.post("/v1/models/clf/predictions:batchGet", json={"keys": asked}).json()
                    answers.append((",".join(asked), ([p["key"] for p in body["predictions"]], body["missing"])))
                    answers.extend((p["key"], (p["key"], p["prediction"])) for p in body["predictions"])
        return answers

    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        every = [answer for answers in pool.map(client, range(64)) for answer in answers]
    for asked, got in every:
        if "," in asked:
            first, missing, last = asked.split(",")
            assert got == (list(dict.fromkeys([first, last])), [missing])
        else:
            assert got == (asked, expected[asked])


def test_a_lookup_answers_head_as_get_without_the_body(url):
    response = httpx.head(f"{url}/v1/models/clf/predictions/T-1", timeout=30)
    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["content-type"] == "application/json"
