"""A ledger with known truth for the monitor's tests, built by the real parts (imported by name).

A logistic-regression churn model on three features is registered; a real batch job scores
CUSTOMERS customers with the ledger on (its parts and input indexed); a real `LedgerWriter`
then records live traffic at chosen times after the batch, from real model calls:

- keys 0-299, `live`: the very inputs the batch saw (their scores must equal the batch's);
- keys 300-499, `event-refresh`: f0 moved by +1 since the batch (an event changed them);
- key 500, `live`: the batch's inputs, but a score moved by 0.125 by hand (a parity defect);
- 200 `precomputed` lookups of keys 600-799 answering the batch's score, and 100 `live`
  infer calls without a key (in batches of 10 rows);
- 40 failed requests (30 of one reason, 10 of another);

and labels (by key, observed after everything) are loaded with `foretell.api.load_labels`. With
`drifted=True`, 1,500 more live rows three hours after the others have f1 moved by one sd.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression

from foretell import api
from foretell.core.predictor import Predictions
from foretell.ledger.batch_index import batch_jobs
from foretell.ledger.record import Entry, new_prediction_id
from foretell.ledger.segments import LedgerLocation
from foretell.ledger.settings import LedgerSettings
from foretell.ledger.writer import LedgerWriter

CUSTOMERS = 2000
UNCHANGED = range(300)
CHANGED = range(300, 500)
DEFECT = 500
LOOKUPS = range(600, 800)
DEFECT_SHIFT = 0.125
MODEL = "churn"
DRIFTED_ROWS = 1500


def customer(i: int) -> str:
    return f"C-{i:05d}"


@dataclass(frozen=True)
class Built:
    home: Path
    ledger: Path
    customers: Path
    scores: Path
    job_id: str
    batch_at: datetime
    live_start: datetime
    export: Path


def features(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3))


def build(root: Path, *, drifted: bool = False) -> Built:
    home, files = root / "home", root / "files"
    files.mkdir(parents=True)
    x = features(2000, 0)
    joblib.dump(LogisticRegression().fit(x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)), files / "churn.joblib")
    # Not compiled: the batch and live calls then run the same predictor (a compiled one may differ in the last bits).
    # The registration sample is the reference profile's source: the same distribution the customers come from.
    sample = pa.table({"f0": x[:500, 0], "f1": x[:500, 1], "f2": x[:500, 2]})
    api.register(MODEL, files / "churn.joblib", aliases=("production",), sample=sample, compile=False, home=home)
    rows = features(CUSTOMERS, 1)
    customers = files / "customers.parquet"
    ids = [customer(i) for i in range(CUSTOMERS)]
    pq.write_table(pa.table({"customer_id": ids, "f0": rows[:, 0], "f1": rows[:, 1], "f2": rows[:, 2]}), customers)
    ledger = home / "ledger"
    result = api.run_batch(
        f"{MODEL}@production", customers, files / "scores", home=home, id_column="customer_id", ledger=str(ledger)
    )
    [job] = batch_jobs(LedgerLocation(ledger), MODEL)
    batch_at = datetime.fromisoformat(str(job["predicted_at"]))
    batch_at = batch_at if batch_at.tzinfo else batch_at.replace(tzinfo=UTC)
    live_start = batch_at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)

    model = api.load(f"{MODEL}/1", home=home)
    writer = LedgerWriter(ledger, LedgerSettings(), writer="monitor-tests")
    moment = iter(live_start + timedelta(seconds=7 * i) for i in range(100_000))

    def record(indexes: list[int], source: str, *, keyed: bool = True, shift: float = 0.0, wrong: float = 0.0,
               values: np.ndarray | None = None, latency: float = 2.0, at: datetime | None = None) -> None:  # fmt: skip
        data = rows[indexes] if values is None else values
        data = data + np.array([shift, 0.0, 0.0])
        columns = model.coerce([{"f0": a, "f1": b, "f2": c} for a, b, c in data])
        predictions = model.predict_columns(columns)
        if wrong:
            changed = dict(predictions.columns)
            score = np.asarray(changed["score"], dtype=np.float64)
            changed["score"] = np.where(score + wrong <= 1.0, score + wrong, score - wrong)  # still a probability
            predictions = Predictions(changed, predictions.outputs, len(predictions))
        writer.record(
            Entry(
                new_prediction_id(), MODEL, source=source, endpoint="infer" if source == "live" else "events",  # type: ignore[arg-type]
                version=1, sha256=model.info.sha256, predictor="original", signature=model.info.signature,
                frame=columns.frame, predictions=predictions,
                keys=[customer(i) for i in indexes] if keyed else None, latency_ms=latency,
                batch_size=len(data), predicted_at=(at or next(moment)).timestamp(),
            )
        )  # fmt: skip

    for n, i in enumerate(UNCHANGED):
        record([i], "live", latency=1.0 + n / 100)
    for n, i in enumerate(CHANGED):
        record([i], "event-refresh", shift=1.0, latency=3.0 + n / 50)
    record([DEFECT], "live", wrong=DEFECT_SHIFT)
    scored = {r["customer_id"]: r for r in pq.read_table(files / "scores").to_pylist()}
    for i in LOOKUPS:
        batch = scored[customer(i)]
        stored = {"score": batch["score"], "label": batch["label"], "proba": batch["proba"]}
        writer.record(
            Entry(new_prediction_id(), MODEL, source="precomputed", endpoint="lookup", version=1,
                  outputs=[stored], keys=[customer(i)], latency_ms=0.3, predicted_at=next(moment).timestamp())
        )  # fmt: skip
    for block in range(10):
        record([], "live", keyed=False, values=features(10, 100 + block), latency=5.0 + block)
    for n in range(40):  # 30 failed (the server's deadline), 10 refused (the client's bad input)
        reason = "deadline passed before the model ran" if n < 30 else "row 0: 'f0': must be a number"
        writer.record(
            Entry(new_prediction_id(), MODEL, source="live", endpoint="infer", status="error" if n < 30 else "refused",
                  error=reason, latency_ms=0.5, predicted_at=next(moment).timestamp())
        )  # fmt: skip
    if drifted:  # then 1,500 more live calls without a key, three hours in, with f1 moved by one sd
        shifted = features(DRIFTED_ROWS, 7) + np.array([0.0, 1.0, 0.0])
        for block in range(0, DRIFTED_ROWS, 10):
            at = live_start + timedelta(hours=3, seconds=2 * block)
            record([], "live", keyed=False, values=shifted[block : block + 10], at=at)
    writer.flush()
    writer.close()

    labels = files / "labels.parquet"
    rng = np.random.default_rng(3)
    observed = live_start + timedelta(days=2)
    churned = (rows[:, 0] + 0.5 * rows[:, 1] + rng.normal(scale=1.0, size=CUSTOMERS) > 0).astype(int)
    labelled = list(range(0, CUSTOMERS, 2)) + list(range(1, 800, 2))  # half of all, and every live key
    pq.write_table(
        pa.table({
            "customer_id": [customer(i) for i in labelled],
            "churned": [int(churned[i]) for i in labelled],
            "observed_at": pa.array([observed] * len(labelled), pa.timestamp("us", tz="UTC")),
        }),
        labels,
    )  # fmt: skip
    api.load_labels(MODEL, labels, key="customer_id", label="churned", at="observed_at", ledger=ledger, home=home)
    export = files / "export.parquet"
    api.ledger_export(MODEL, export, since=batch_at - timedelta(hours=1), ledger=ledger, home=home)
    return Built(home, ledger, customers, files / "scores", result.job_id, batch_at, live_start, export)
