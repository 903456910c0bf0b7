"""The movies demo: a plausible catalogue, ratings with taste in them, and a recommender that finds it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from foretell.adapters.python import PythonFlavor
from foretell.core.frame import Frame
from foretell.core.predictor import PredictOptions
from foretell.demo.evaluation import evaluate_recommender, holdout_split
from foretell.demo.movies import MovieRecommender, generate_movies, generate_ratings, train_als
from foretell.demo.movies_data import GENRES
from foretell.errors import InvalidInput

N_MOVIES, N_USERS = 500, 2_000
UNKNOWN_USER = 10**9
CLASS = {"class": "foretell.demo.movies:MovieRecommender"}


@pytest.fixture(scope="module")
def movies() -> pa.Table:
    return generate_movies(N_MOVIES, seed=7)


@pytest.fixture(scope="module")
def ratings(movies: pa.Table) -> pa.Table:
    return generate_ratings(N_USERS, movies, seed=7)


@pytest.fixture(scope="module")
def split(ratings: pa.Table) -> tuple[pa.Table, pa.Table]:
    return holdout_split(ratings, seed=7)


@pytest.fixture(scope="module")
def model(split: tuple[pa.Table, pa.Table]) -> MovieRecommender:
    return MovieRecommender.fit(split[0], n_factors=16, seed=7)


def fresh(split: tuple[pa.Table, pa.Table]) -> MovieRecommender:
    """A model of its own for tests that change users (the module-wide one must stay as trained)."""
    return MovieRecommender.fit(split[0], n_factors=16, iters=3, seed=7)


def sci_fi_ids(movies: pa.Table) -> np.ndarray:
    main_genre = pc.utf8_split_whitespace(pc.replace_substring(movies.column("genres"), "|", " "))
    first = pc.list_element(main_genre, 0)
    return movies.column("movie_id").to_numpy()[pc.equal(first, "Sci-Fi").to_numpy(zero_copy_only=False)]


# -- the data --------------------------------------------------------------------------------------


def test_catalogue_is_deterministic_with_unique_plausible_titles(movies: pa.Table) -> None:
    assert generate_movies(N_MOVIES, seed=7).equals(movies)
    assert movies.schema.names == ["movie_id", "title", "genres", "year"]
    assert movies.column("movie_id").to_pylist() == list(range(1, N_MOVIES + 1))
    titles = movies.column("title").to_pylist()
    assert len(set(titles)) == len(titles)
    assert all(3 <= len(t) <= 60 and t[0].isupper() for t in titles)
    years = movies.column("year").to_numpy()
    assert years.min() >= 1960 and years.max() <= 2024
    for genres in movies.column("genres").to_pylist():
        names = genres.split("|")
        assert 1 <= len(names) <= 3 and len(set(names)) == len(names) and set(names) <= set(GENRES)


def test_ratings_are_deterministic_and_shaped_like_a_service(movies: pa.Table, ratings: pa.Table) -> None:
    assert generate_ratings(N_USERS, movies, seed=7).equals(ratings)
    assert not generate_ratings(N_USERS, movies, seed=8).equals(ratings)
    assert ratings.schema.names == ["user_id", "movie_id", "rating", "ts"]
    assert ratings.schema.field("ts").type == pa.timestamp("s", tz="UTC")
    users = ratings.column("user_id").to_numpy()
    per_user = np.bincount(users)[1:]
    assert len(per_user) == N_USERS and per_user.min() >= 20 and per_user.max() <= 100
    pairs = users * (N_MOVIES + 1) + ratings.column("movie_id").to_numpy()
    assert len(np.unique(pairs)) == len(pairs)  # nobody rates the same film twice
    values = ratings.column("rating").to_numpy()
    assert set(np.unique(values)) == {1, 2, 3, 4, 5}
    assert 3.2 < values.mean() < 4.0
    ts = ratings.column("ts").cast(pa.int64()).to_numpy()
    same_user = users[1:] == users[:-1]
    assert np.all(ts[1:][same_user] > ts[:-1][same_user])  # each user's ratings in time order


def test_popularity_has_a_long_tail(ratings: pa.Table) -> None:
    counts = np.sort(np.bincount(ratings.column("movie_id").to_numpy()))[::-1]
    top_tenth = counts[: N_MOVIES // 10].sum() / counts.sum()
    assert 0.2 < top_tenth < 0.6


def test_ratings_carry_taste_within_genres(movies: pa.Table, ratings: pa.Table) -> None:
    """A user who loves one sci-fi film rates the next one higher than a user who hated the first."""
    scifi = np.isin(ratings.column("movie_id").to_numpy(), sci_fi_ids(movies))
    users, values = ratings.column("user_id").to_numpy()[scifi], ratings.column("rating").to_numpy()[scifi]
    first = np.unique(users, return_index=True)[1]
    later = np.setdiff1d(np.arange(len(users)), first)
    first_by_user = dict(zip(users[first].tolist(), values[first].tolist(), strict=True))
    loved = np.array([first_by_user[u] >= 4 for u in users[later]])
    assert values[later][loved].mean() > values[later][~loved].mean() + 0.3


# -- training and recommending ---------------------------------------------------------------------


def test_als_factors_have_the_expected_shapes(split: tuple[pa.Table, pa.Table]) -> None:
    factors = train_als(split[0], n_factors=8, iters=2, seed=7)
    assert factors.user_factors.shape == (N_USERS, 8) and factors.movie_factors.shape[1] == 8
    assert np.all(np.diff(factors.user_ids) > 0) and np.all(np.diff(factors.movie_ids) > 0)
    assert factors.movie_counts.sum() == split[0].num_rows
    assert 3.0 < factors.global_mean < 4.2
    with pytest.raises(ValueError, match="reg > 0"):
        train_als(split[0], reg=0)


def test_recommender_beats_popularity_on_held_out_films(
    model: MovieRecommender, split: tuple[pa.Table, pa.Table]
) -> None:
    score = evaluate_recommender(model, *split, k=10)
    assert score.users > 800
    assert score.hit_rate > 1.2 * score.popularity_hit_rate
    assert score.hit_rate > score.popularity_hit_rate + 0.03
    assert score.rmse < 1.0


def test_recommendations_exclude_what_the_user_rated(model: MovieRecommender, split: tuple[pa.Table, pa.Table]) -> None:
    train = split[0]
    out = model.predict({"user_id": np.arange(1, 301)}, k=20)
    assert out["items"].shape == (300, 20) and out["items"].dtype == np.int64
    users, movies = train.column("user_id").to_numpy(), train.column("movie_id").to_numpy()
    for row, user in enumerate(range(1, 301)):
        assert not set(out["items"][row]) & set(movies[users == user])
        assert len(set(out["items"][row])) == 20
    assert np.all(np.diff(out["scores"], axis=1) <= 0)  # best first


def test_batch_and_one_by_one_agree(model: MovieRecommender) -> None:
    users = np.array([5, UNKNOWN_USER, 17, 5, 1_999])
    batch = model.predict({"user_id": users})
    for row, user in enumerate(users):
        one = model.predict({"user_id": np.array([user])})
        np.testing.assert_array_equal(one["items"][0], batch["items"][row])
        np.testing.assert_allclose(one["scores"][0], batch["scores"][row], rtol=1e-12)


def test_unknown_users_get_the_cold_start_list(model: MovieRecommender, split: tuple[pa.Table, pa.Table]) -> None:
    out = model.predict({"user_id": np.array([UNKNOWN_USER, UNKNOWN_USER + 1])}, k=10)
    np.testing.assert_array_equal(out["items"][0], out["items"][1])
    assert np.all(np.diff(out["scores"][0]) <= 0)
    # Only well-known films: all ten are among the most-rated fifth of the catalogue.
    counts = np.bincount(split[0].column("movie_id").to_numpy(), minlength=N_MOVIES + 1)
    popular = np.argsort(-counts, kind="stable")[: N_MOVIES // 5]
    assert set(out["items"][0]) <= set(popular)


def test_k_larger_than_the_catalogue_pads_with_minus_one(model: MovieRecommender) -> None:
    out = model.predict({"user_id": np.array([3, UNKNOWN_USER])}, k=N_MOVIES + 50)
    assert out["items"].shape == (2, N_MOVIES)
    rated = int((out["items"][0] == -1).sum())
    assert rated >= 19 and np.all(np.isneginf(out["scores"][0][-rated:]))
    assert sorted(out["items"][1]) == list(range(1, N_MOVIES + 1))
    with pytest.raises(ValueError, match="at least 1"):
        model.predict({"user_id": np.array([3])}, k=0)


def test_save_and_load_give_identical_predictions(model: MovieRecommender, tmp_path: Path) -> None:
    folder = model.save(tmp_path / "movies")
    assert [p.name for p in folder.iterdir()] == ["recommender.npz"]
    with np.load(folder / "recommender.npz", allow_pickle=False) as data:  # plain arrays, nothing to unpickle
        assert "rated_movie_ids" in data.files
    loaded = MovieRecommender.load(folder)
    users = np.concatenate([np.arange(1, N_USERS + 1), [UNKNOWN_USER]])
    before, after = model.predict({"user_id": users}), loaded.predict({"user_id": users})
    np.testing.assert_array_equal(before["items"], after["items"])
    np.testing.assert_array_equal(before["scores"], after["scores"])


def test_the_python_flavor_loads_and_describes_it(model: MovieRecommender, tmp_path: Path) -> None:
    folder = model.save(tmp_path / "movies")
    flavor = PythonFlavor()
    assert flavor.describe(folder, CLASS) == MovieRecommender.signature
    loaded = flavor.load(folder, MovieRecommender.signature, CLASS)
    frame = Frame({"user_id": np.array([1, 2], dtype=np.int64)})
    out = loaded.predict(frame, PredictOptions(k=5))
    np.testing.assert_array_equal(out["items"], model.predict({"user_id": np.array([1, 2])}, k=5)["items"])


# -- changing a user's taste -----------------------------------------------------------------------


def test_fold_in_of_a_trained_users_ratings_gives_their_vector(
    model: MovieRecommender, split: tuple[pa.Table, pa.Table]
) -> None:
    train = split[0]
    users = train.column("user_id").to_numpy()
    mine = users == 42
    ratings = dict(
        zip(
            train.column("movie_id").to_numpy()[mine].tolist(),
            train.column("rating").to_numpy()[mine].tolist(),
            strict=True,
        )
    )
    vector = model.fold_in(ratings)
    row = int(np.searchsorted(model._users.ids, 42))
    np.testing.assert_allclose(vector[:-1], model._users.factors[row], atol=1e-8)
    np.testing.assert_allclose(vector[-1], model._users.bias[row], atol=1e-8)


def test_three_sci_fi_fives_move_sci_fi_up(movies: pa.Table, split: tuple[pa.Table, pa.Table]) -> None:
    recommender = fresh(split)
    scifi = sci_fi_ids(movies)
    counts = np.bincount(split[0].column("movie_id").to_numpy(), minlength=N_MOVIES + 1)
    favourites = scifi[np.argsort(-counts[scifi], kind="stable")[:3]]  # three well-known sci-fi films
    others = np.setdiff1d(scifi, favourites)

    def sci_fi_rank(user: int) -> float:
        items = recommender.predict({"user_id": np.array([user])}, k=N_MOVIES)["items"][0]
        position = {movie: i for i, movie in enumerate(items.tolist())}
        return float(np.mean([position[m] for m in others.tolist()]))

    before = sci_fi_rank(UNKNOWN_USER)
    vector = recommender.add_ratings(UNKNOWN_USER, {int(m): 5.0 for m in favourites})
    assert vector.shape == (17,)
    after = sci_fi_rank(UNKNOWN_USER)
    assert after < before - 0.05 * N_MOVIES  # the other sci-fi films climb the list
    items = recommender.predict({"user_id": np.array([UNKNOWN_USER])}, k=20)["items"][0]
    assert not set(items) & set(favourites.tolist())  # and the rated ones are no longer offered


def test_add_ratings_updates_a_known_user_and_keeps_earlier_ratings(split: tuple[pa.Table, pa.Table]) -> None:
    recommender = fresh(split)
    first = int(recommender.predict({"user_id": np.array([7])})["items"][0, 0])
    recommender.add_ratings(7, {first: 1.0})
    after = recommender.predict({"user_id": np.array([7])}, k=50)["items"][0]
    assert first not in after
    rated = split[0].column("movie_id").to_numpy()[split[0].column("user_id").to_numpy() == 7]
    assert not set(after) & set(rated.tolist())  # the training ratings are still excluded
    with pytest.raises(InvalidInput, match="not in the catalogue"):
        recommender.add_ratings(7, {N_MOVIES + 999: 4.0})


def test_set_user_installs_a_vector_and_survives_a_save(split: tuple[pa.Table, pa.Table], tmp_path: Path) -> None:
    recommender = fresh(split)
    vector = recommender.fold_in({1: 5.0, 2: 4.0})
    recommender.set_user(UNKNOWN_USER, vector, {1: 5.0, 2: 4.0})
    out = recommender.predict({"user_id": np.array([UNKNOWN_USER])}, k=30)["items"][0]
    assert not {1, 2} & set(out.tolist())
    reloaded = MovieRecommender.load(recommender.save(tmp_path / "m"))
    np.testing.assert_array_equal(reloaded.predict({"user_id": np.array([UNKNOWN_USER])}, k=30)["items"][0], out)
    with pytest.raises(InvalidInput, match="17 values"):
        recommender.set_user(3, np.zeros(5), {})
    assert np.array_equal(recommender.fold_in({}), np.zeros(17))


def _ratings_of(train: pa.Table, user: int) -> dict[int, float]:
    mine = train.column("user_id").to_numpy() == user
    return dict(
        zip(
            train.column("movie_id").to_numpy()[mine].tolist(),
            train.column("rating").to_numpy()[mine].tolist(),
            strict=True,
        )
    )


def test_given_the_ratings_it_was_trained_on_a_user_gets_the_same_recommendations(
    model: MovieRecommender, split: tuple[pa.Table, pa.Table]
) -> None:
    import orjson

    text = orjson.dumps({str(m): r for m, r in _ratings_of(split[0], 42).items()}).decode()
    plain = model.predict({"user_id": np.array([42]), "ratings": np.array([None], dtype=object)})
    given = model.predict({"user_id": np.array([42]), "ratings": np.array([text], dtype=object)})
    np.testing.assert_array_equal(given["items"], plain["items"])
    np.testing.assert_allclose(given["scores"], plain["scores"], atol=1e-6)


def test_ratings_given_with_the_request_change_that_request_only(
    movies: pa.Table, split: tuple[pa.Table, pa.Table]
) -> None:
    import orjson

    recommender = fresh(split)
    scifi = sci_fi_ids(movies)
    counts = np.bincount(split[0].column("movie_id").to_numpy(), minlength=N_MOVIES + 1)
    favourites = scifi[np.argsort(-counts[scifi], kind="stable")[:3]].tolist()
    text = orjson.dumps({str(m): 5.0 for m in favourites}).decode()
    users = np.array([UNKNOWN_USER, UNKNOWN_USER])
    out = recommender.predict({"user_id": users, "ratings": np.array([text, None], dtype=object)}, k=N_MOVIES)
    informed, cold = out["items"][0].tolist(), out["items"][1].tolist()
    others = [m for m in scifi.tolist() if m not in favourites]
    assert np.mean([informed.index(m) for m in others]) < np.mean([cold.index(m) for m in others]) - 0.05 * N_MOVIES
    assert not set(informed) & set(favourites)  # the films just rated are not offered back
    again = recommender.predict({"user_id": np.array([UNKNOWN_USER])}, k=N_MOVIES)["items"][0].tolist()
    assert again == cold  # the model itself did not change


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"x": 5}', '{"999999": 5}', '{"1": "high"}'])
def test_unusable_ratings_are_left_out_and_never_fail_the_request(model: MovieRecommender, text: str) -> None:
    plain = model.predict({"user_id": np.array([42])})
    given = model.predict({"user_id": np.array([42]), "ratings": np.array([text], dtype=object)})
    assert given["items"].shape == plain["items"].shape


def test_ratings_for_ids_no_int64_holds_or_not_finite_are_left_out(model: MovieRecommender) -> None:
    # Found by fuzzing the server (issue 20): a movie id past int64 failed the whole batch with an OverflowError.
    hostile = ['{"99999999999999999999": 5, "1": 4}', '{"1": "nan", "2": "inf"}', '{"-99999999999999999999": 1}']
    users = np.array([1, 2, 3])
    answer = model.predict({"user_id": users, "ratings": np.array(hostile, dtype=object)}, k=5)
    np.testing.assert_array_equal(
        answer["items"][0],
        model.predict({"user_id": users[:1], "ratings": np.array(['{"1": 4}'], dtype=object)}, k=5)["items"][0],
    )
    assert np.isfinite(answer["scores"]).all()
