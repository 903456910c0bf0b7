"""The movie-streaming demo data: a catalogue of made-up films and who rated what.

Ratings come from a latent-factor world so that a recommender has something real to
find: every user has a few favourite genres (and one they avoid) plus a taste along
hidden "style" axes the genres do not name; every film has a quality and a popularity.
Users mostly watch what they like, and rate it by how well it matches their taste, so
taste explains both *which* films a user rated and *how*. Popularity matters too, as
it does on every real service; that is why "recommend the most popular films" is the
baseline a recommender has to beat.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = ["GENRES", "generate_movies", "generate_ratings", "genre_matrix"]

Floats = npt.NDArray[np.float64]

GENRES = (
    "Drama", "Comedy", "Action", "Thriller", "Romance", "Sci-Fi", "Crime", "Adventure", "Horror",
    "Fantasy", "Mystery", "Animation", "Family", "Documentary", "War", "History", "Music", "Western",
)  # fmt: skip
#: How often a genre is a film's main one, in GENRES order.
_GENRE_SHARE = np.array([18, 15, 11, 9, 7, 6, 6, 5, 5, 4, 3, 3, 2, 2, 1.5, 1.5, 1, 1], dtype=np.float64)

_ADJECTIVES = (
    "Silent", "Broken", "Golden", "Last", "Hidden", "Crimson", "Endless", "Midnight", "Frozen", "Wild",
    "Lost", "Burning", "Secret", "Distant", "Hollow", "Savage", "Quiet", "Electric", "Velvet", "Iron",
    "Shattered", "Forgotten", "Restless", "Dark", "Bright", "Final", "Little", "Lonely", "Perfect", "Scarlet",
)  # fmt: skip
# A few nouns per genre make a horror film sound like one ("The Hollow Cellar").
_NOUNS = {
    "Drama": ("Promise", "Letters", "Harvest", "Inheritance", "Daughter", "Winter", "Silence", "Return"),
    "Comedy": ("Wedding", "Roommates", "Vacation", "Neighbours", "Reunion", "Weekend", "Uncle", "Party"),
    "Action": ("Strike", "Protocol", "Vendetta", "Fury", "Siege", "Payback", "Getaway", "Convoy"),
    "Thriller": ("Witness", "Alibi", "Stranger", "Conspiracy", "Signal", "Deadline", "Motive", "Ransom"),
    "Romance": ("Summer", "Heart", "Proposal", "Serenade", "Kiss", "Letters", "Valentine", "Affair"),
    "Sci-Fi": ("Orbit", "Signal", "Android", "Nebula", "Colony", "Horizon", "Paradox", "Starship"),
    "Crime": ("Heist", "Syndicate", "Detective", "Racket", "Informant", "Verdict", "Cartel", "Job"),
    "Adventure": ("Expedition", "Voyage", "Island", "Treasure", "Compass", "Jungle", "Summit", "Map"),
    "Horror": ("Cellar", "Curse", "Haunting", "Ritual", "Asylum", "Woods", "Possession", "Doll"),
    "Fantasy": ("Kingdom", "Sorcerer", "Crown", "Prophecy", "Dragon", "Realm", "Amulet", "Quest"),
    "Mystery": ("Riddle", "Manor", "Disappearance", "Cipher", "Portrait", "Clue", "Key", "Inquiry"),
    "Animation": ("Robot", "Penguin", "Balloon", "Toybox", "Meadow", "Fox", "Snowflake", "Lantern"),
    "Family": ("Puppy", "Treehouse", "Holiday", "Grandpa", "Pony", "Christmas", "Camp", "Garden"),
    "Documentary": ("Chronicles", "Story", "Archive", "Frontier", "Ocean", "Machine", "Footage", "Life"),
    "War": ("Front", "Battalion", "Trenches", "Sniper", "Armistice", "Beachhead", "Squadron", "Retreat"),
    "History": ("Empire", "Dynasty", "Revolution", "Queen", "Senate", "Pharaoh", "Charter", "Crusade"),
    "Music": ("Rhythm", "Encore", "Ballad", "Symphony", "Record", "Jukebox", "Tour", "Chorus"),
    "Western": ("Outlaw", "Ranch", "Sheriff", "Frontier", "Gunslinger", "Canyon", "Saloon", "Posse"),
}
_PLACES = (
    "Avalon", "the North", "Brooklyn", "Marrakesh", "the Deep", "Tomorrow", "Glass", "Venus", "Kings",
    "the Valley", "Paris", "Nowhere", "the Sun", "Salt Lake", "Eden", "the Coast", "Tokyo", "Dust",
)  # fmt: skip
_PATTERNS = ("The {adj} {noun}", "{adj} {noun}", "{noun} of {place}", "The {noun}", "{noun} in {place}")
_SEQUELS = ("2", "3", "II", "III", "Returns", "Reloaded")

# The hidden world behind the ratings: the style axes no genre names, how strongly taste
# drives what a user watches and how they rate it, and the rating of a so-so match. Tuned
# so ratings spread like MovieLens's (about 2% ones, 10% twos, 25% threes, 33% fours, 29% fives).
_STYLE_DIMS = 6
_WATCH_TASTE = 1.6
_RATE_TASTE = 0.8
_BASE_RATING = 2.2
_EPOCH_START = int(datetime(2019, 1, 1, tzinfo=UTC).timestamp())
_EPOCH_END = int(datetime(2024, 6, 1, tzinfo=UTC).timestamp())


def generate_movies(n_movies: int, seed: int = 7) -> pa.Table:
    """A catalogue: `movie_id` (1..n), a unique made-up `title`, `genres` ("Sci-Fi|Action"), `year`."""
    if n_movies < 1:
        raise ValueError(f"need at least one movie, got n_movies={n_movies}")
    rng = np.random.default_rng(seed)
    share = _GENRE_SHARE / _GENRE_SHARE.sum()
    primary = rng.choice(len(GENRES), size=n_movies, p=share)
    extra_genres = rng.binomial(2, 0.45, size=n_movies)
    others = rng.choice(len(GENRES), size=(n_movies, 2), p=share)
    years = np.minimum(1960 + np.floor(rng.beta(4.0, 1.3, n_movies) * 65), 2024).astype(np.int64)
    picks = rng.integers(0, 1 << 30, size=(n_movies, 4))  # pattern, adjective, noun, place

    titles: list[str] = []
    taken: set[str] = set()
    genre_strings: list[str] = []
    for i in range(n_movies):
        genres = [GENRES[primary[i]]]
        for g in others[i, : extra_genres[i]]:
            if GENRES[g] not in genres:
                genres.append(GENRES[g])
        genre_strings.append("|".join(genres))
        nouns = _NOUNS[genres[0]]
        pattern, adj, noun, place = picks[i]
        title = _PATTERNS[pattern % len(_PATTERNS)].format(
            adj=_ADJECTIVES[adj % len(_ADJECTIVES)], noun=nouns[noun % len(nouns)], place=_PLACES[place % len(_PLACES)]
        )
        # A repeated title becomes a sequel, as it would on a real shelf.
        candidate, n = title, 0
        while candidate in taken:
            candidate = f"{title} {_SEQUELS[n]}" if n < len(_SEQUELS) else f"{title} {n + 2}"
            n += 1
        taken.add(candidate)
        titles.append(candidate)

    return pa.table(
        {
            "movie_id": pa.array(np.arange(1, n_movies + 1, dtype=np.int64)),
            "title": pa.array(titles, pa.string()),
            "genres": pa.array(genre_strings, pa.string()),
            "year": pa.array(years),
        }
    )


def genre_matrix(movies: pa.Table) -> Floats:
    """One row per movie, one column per genre in GENRES order: 1 for the main genre, 0.6 for the others."""
    matrix = np.zeros((movies.num_rows, len(GENRES)), dtype=np.float64)
    index = {g: i for i, g in enumerate(GENRES)}
    for row, text in enumerate(movies.column("genres").to_pylist()):
        for rank, genre in enumerate(str(text).split("|")):
            matrix[row, index[genre]] = 1.0 if rank == 0 else 0.6
    return matrix


def generate_ratings(n_users: int, movies: pa.Table, seed: int = 7, *, block: int = 2048) -> pa.Table:
    """Each of `n_users` users rates 20–100 movies (at most the catalogue) from 1 to 5.

    Returns `user_id` (1..n), `movie_id`, `rating` (int64) and `ts` (UTC seconds),
    ordered by user then time. Users are generated `block` at a time so memory stays
    bounded at any size; the same arguments always give the same table.
    """
    if n_users < 1:
        raise ValueError(f"need at least one user, got n_users={n_users}")
    rng = np.random.default_rng(seed)
    movie_ids = np.asarray(movies.column("movie_id").to_numpy(), dtype=np.int64)
    n_movies = len(movie_ids)
    loadings = genre_matrix(movies)
    loadings /= loadings.sum(axis=1, keepdims=True)
    style = rng.standard_normal((n_movies, _STYLE_DIMS)) / np.sqrt(_STYLE_DIMS)
    quality = rng.normal(0.0, 0.45, n_movies)
    years = np.asarray(movies.column("year").to_numpy(), dtype=np.float64)
    # Good and recent films get watched more, and that is most of it: the long tail of rarely
    # watched titles is mostly the weaker ones, as on a real service.
    log_popularity = rng.normal(0.0, 0.4, n_movies) + 2.0 * quality + 0.015 * (years - 2000)
    genre_popularity = np.log(_GENRE_SHARE / _GENRE_SHARE.sum())

    parts: list[tuple[npt.NDArray[np.int64], ...]] = []
    for first in range(0, n_users, block):
        size = min(block, n_users - first)
        taste = rng.normal(-0.5, 0.35, (size, len(GENRES)))
        # Three favourite genres (popular genres are more often someone's favourite) and one avoided.
        gumbel = genre_popularity - np.log(-np.log(rng.random((size, len(GENRES)))))
        ranked = np.argsort(-gumbel, axis=1)
        rows = np.arange(size)[:, None]
        taste[rows, ranked[:, :3]] += np.array([2.2, 1.6, 1.0])
        taste[rows, ranked[:, -1:]] -= 1.0
        leaning = rng.normal(0.0, 0.35, (size, 1))  # some users rate everything higher
        user_style = rng.normal(0.0, 0.9, (size, _STYLE_DIMS))
        affinity = taste @ loadings.T + user_style @ style.T

        counts = np.minimum(20 + np.floor(81 * rng.beta(1.2, 2.5, size)).astype(np.int64), n_movies)
        keys = log_popularity + _WATCH_TASTE * affinity - np.log(-np.log(rng.random((size, n_movies))))
        most = int(counts.max())
        # Gumbel-top-k: each user's `count` largest keys are a sample without replacement,
        # weighted by popularity × exp(taste): users mostly watch what they expect to like.
        top = (
            np.argpartition(-keys, most - 1, axis=1)[:, :most]
            if most < n_movies
            else np.tile(np.arange(n_movies), (size, 1))
        )
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1), axis=1)
        keep = np.arange(most)[None, :] < counts[:, None]
        user_rows = np.broadcast_to(rows, top.shape)[keep]
        chosen = top[keep]
        latent = _BASE_RATING + leaning[user_rows, 0] + quality[chosen] + _RATE_TASTE * affinity[user_rows, chosen]
        ratings = np.clip(np.round(latent + rng.normal(0.0, 0.6, len(chosen))), 1, 5).astype(np.int64)
        start = rng.integers(_EPOCH_START, _EPOCH_END, size)
        gaps = rng.exponential(36 * 3600.0, len(chosen)).astype(np.int64) + 60
        # Each user's ratings follow one another from their first visit: a running sum of the gaps,
        # restarted at every user.
        elapsed = np.cumsum(gaps)
        first_gap = np.cumsum(counts) - counts
        offsets = elapsed - np.repeat(elapsed[first_gap] - gaps[first_gap], counts)
        parts.append((user_rows + first + 1, movie_ids[chosen], ratings, start[user_rows] + offsets))

    user_id, movie_id, rating, ts = (np.concatenate(column) for column in zip(*parts, strict=True))
    return pa.table(
        {
            "user_id": pa.array(user_id, pa.int64()),
            "movie_id": pa.array(movie_id, pa.int64()),
            "rating": pa.array(rating, pa.int64()),
            "ts": pa.array(ts, pa.timestamp("s", tz="UTC")),
        }
    )
