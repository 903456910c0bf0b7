"""The demo recommender registered as `movies@production` for hybrid tests (imported by name)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

import foretell
from foretell.demo.movies import MovieRecommender, generate_movies, generate_ratings


def register_movies(home: Path, scratch: Path) -> pa.Table:
    """Fit the recommender on 300 users' ratings of 200 films (fixed seeds), register it, and return the ratings."""
    ratings = generate_ratings(300, generate_movies(200, seed=5), seed=5)
    folder = MovieRecommender.fit(ratings, n_factors=8, iters=4).save(scratch / "movies")
    foretell.register(
        "movies",
        folder,
        flavor="python",
        signature=MovieRecommender.signature,
        flavor_options={"class": "foretell.demo.movies:MovieRecommender"},
        aliases=["production"],
        home=home,
    )
    return ratings
