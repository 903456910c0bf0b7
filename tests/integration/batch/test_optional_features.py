"""A batch input may leave out a model's optional features (the recommender's `ratings`)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

import foretell
from foretell.demo.movies import MovieRecommender, generate_movies, generate_ratings


def test_the_recommender_scores_a_file_of_user_ids_alone_and_matches_predict_batch(tmp_path):
    home = tmp_path / "home"
    movies = generate_movies(120, seed=3)
    folder = MovieRecommender.fit(generate_ratings(150, movies, seed=3), n_factors=6, iters=3).save(tmp_path / "m")
    foretell.register(
        "movies",
        folder,
        flavor="python",
        signature=MovieRecommender.signature,
        flavor_options={"class": "foretell.demo.movies:MovieRecommender"},
        home=home,
    )
    users = tmp_path / "users.parquet"
    pq.write_table(pa.table({"user_id": list(range(1, 151))}), users)
    result = foretell.api.run_batch("movies/1", users, tmp_path / "out", home=home, workers=1, id_column="user_id")
    assert result.scored == 150 and result.rejected == 0
    scored = pq.read_table(tmp_path / "out").sort_by("user_id")
    expected = foretell.load("movies/1", home=home).predict_batch([{"user_id": u} for u in range(1, 151)])
    assert scored.column("items").to_pylist() == expected.column("items").tolist()
