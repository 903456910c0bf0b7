"""The hybrid story, told against a real server: `make run` calls this after the nightly batch.

It starts `foretell serve` on a free port, and then:

1. looks up user 17's films from last night's batch (`source: precomputed`);
2. posts three 5-star ratings for well-known sci-fi films the user has not rated;
3. looks the user up again: the recommendations were refreshed at once (`source: live`), and
   sci-fi has moved up;
4. looks up a customer's churn score from last night, sends a `features` event (four more
   support calls this month), and looks again: re-scored live.

Each step prints its latency. The server is stopped at the end; the final `foretell serve`
of `make run` is a separate process.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pyarrow.parquet as pq
from demo_server import running_server

home = Path(os.environ.get("FORETELL_HOME", ".foretell"))
movies = pq.read_table(home / "demo" / "movies.parquet").to_pylist()
titles = {m["movie_id"]: m["title"] for m in movies}
genres = {m["movie_id"]: m["genres"] for m in movies}
#: A user whose top 10 holds no sci-fi (the demo data comes from fixed seeds, so it is always this one).
USER = 69
RUN = f"{time.time():.0f}"  # event ids are unique per tour: a second `make run` tells the story again


def timed(call):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    response = call()
    response.raise_for_status()
    return response.json(), (time.perf_counter() - started) * 1000


def show_films(answer: dict, ms: float) -> list[int]:
    items = answer["prediction"]["items"]
    where = f"model v{answer['model_version']}, computed {answer['computed_at']}"
    print(f"   source: {answer['source']}, {where} ({ms:.1f} ms)")
    for rank, movie in enumerate(items, 1):
        mark = "  <- sci-fi" if "Sci-Fi" in genres.get(movie, "") else ""
        print(f"   {rank:2}. {titles.get(movie, movie)} ({genres.get(movie, '?')}){mark}")
    return items


def main() -> int:
    with (
        running_server("churn@production", "movies@production") as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        print(f"\n== hybrid serving: last night's predictions by key, refreshed the moment events arrive ({url})")
        print(f"\n1. user {USER}'s recommendations, from last night's batch")
        answer, ms = timed(lambda: client.get(f"/v1/models/movies/predictions/{USER}"))
        before = show_films(answer, ms)

        ratings = pq.read_table(home / "demo" / "ratings.parquet", columns=["user_id", "movie_id"]).to_pydict()
        rated = {m for u, m in zip(ratings["user_id"], ratings["movie_id"], strict=True) if u == USER}
        popularity = Counter(ratings["movie_id"])
        scifi = [m for m, _ in popularity.most_common() if "Sci-Fi" in genres.get(m, "") and m not in rated][:3]
        print(f"\n2. user {USER} rates three sci-fi films 5 stars")
        for movie in scifi:
            body = {
                "type": "rating",
                "user_id": USER,
                "movie_id": movie,
                "rating": 5,
                "event_id": f"tour-{RUN}-{movie}",
            }
            result, ms = timed(lambda body=body: client.post("/v1/events", json=body))
            print(f"   {titles[movie]}: applied={result['applied']}, predictions refreshed in {ms:.1f} ms")

        print(f"\n3. user {USER}'s recommendations now")
        answer, ms = timed(lambda: client.get(f"/v1/models/movies/predictions/{USER}"))
        after = show_films(answer, ms)
        count = lambda items: sum("Sci-Fi" in genres.get(m, "") for m in items)  # noqa: E731
        print(f"   sci-fi in the top 10: {count(before)} before, {count(after)} now")

        customer = pq.read_table(home / "demo" / "customers.parquet", columns=["customer_id"]).column(0)[41].as_py()
        print(f"\n4. customer {customer}'s churn risk")
        answer, ms = timed(lambda: client.get(f"/v1/models/churn/predictions/{customer}"))
        print(f"   from last night: score {answer['prediction']['score']:.3f} ({answer['source']}, {ms:.1f} ms)")
        body = {
            "type": "features",
            "key": customer,
            "values": {"support_calls_30d": 6},
            "event_id": f"tour-{RUN}-{customer}",
        }
        result, ms = timed(lambda: client.post("/v1/events", json=body))
        print(f"   event: 6 support calls this month (applied={result['applied']}, {ms:.1f} ms)")
        answer, ms = timed(lambda: client.get(f"/v1/models/churn/predictions/{customer}"))
        print(f"   now: score {answer['prediction']['score']:.3f} ({answer['source']}, {ms:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
