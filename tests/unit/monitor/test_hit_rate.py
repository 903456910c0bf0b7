"""Hit rate@k for a recommender: a label is the item a user later interacted with; a hit when it was shown."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
from ledger.ledgerkit import at, prediction, publish_segment  # tests/unit/ledger, a namespace package

from foretell.demo.movies import MovieRecommender
from foretell.ledger.labels import Label, write_labels
from foretell.ledger.query import LedgerReader
from foretell.ledger.segments import LedgerLocation
from foretell.monitor.quality import quality_section, task_of

K = 10


def test_hit_rate_at_k_per_source_counts_the_later_interactions_that_were_shown(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    location = LedgerLocation(tmp_path / "ledger")
    shown: dict[tuple[str, str], list[int]] = {}
    rows = []
    for user in range(120):
        for source, hour in (("precomputed", 8), ("event-refresh", 9)):
            items = [int(i) for i in rng.choice(500, K, replace=False)]
            shown[(source, f"U{user}")] = items
            rows.append(
                prediction(
                    f"{source}-{user}", f"2026-12-04T{hour:02d}:00", key=f"U{user}", model="movies",
                    source=source, outputs={"items": items, "scores": [1.0] * K},
                )
            )  # fmt: skip
    publish_segment(location, rows)
    # Each user rated one film at noon: for even users one of the films the refresh showed, else any film.
    rated = {
        f"U{u}": shown[("event-refresh", f"U{u}")][u % K] if u % 2 == 0 else int(rng.integers(0, 500))
        for u in range(120)
    }
    later = at("2026-12-04T12:00") + timedelta(minutes=1)
    labels = [Label(key=k, label=str(m), label_value=float(m), observed_at=later) for k, m in rated.items()]
    write_labels(location, "movies", labels)

    with LedgerReader(location).session("movies") as session:
        section = quality_section(session, task_of(MovieRecommender.signature))
    cells = {c.source: c for c in section.cells}
    for source in ("precomputed", "event-refresh"):
        # Independently: per source, the latest prediction before the rating joins it (both are before noon).
        hits = sum(rated[f"U{u}"] in shown[(source, f"U{u}")] for u in range(120))
        assert cells[source].labelled == 120 and cells[source].hits == hits, source
        assert cells[source].hit_rate == hits / 120 and cells[source].k == K
    assert (cells["event-refresh"].hit_rate or 0.0) >= 0.5  # every even user's rating was shown
    assert section.task.kind == "recommender"
