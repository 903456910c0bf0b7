"""The Python API on the demo models: what `make run` shows after `foretell demo init`."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq

import foretell

home = Path(os.environ.get("FORETELL_HOME", ".foretell"))
customers = pq.read_table(home / "demo" / "customers.parquet")
movies_table = pq.read_table(home / "demo" / "movies.parquet")
titles = dict(zip(movies_table.column("movie_id").to_pylist(), movies_table.column("title").to_pylist(), strict=True))

print("== churn@production: one customer, then a whole table")
churn = foretell.load("churn@production")
print(f"loaded {churn.info.uri} ({churn.info.flavor}, {len(churn.signature.inputs)} features, sha256 verified)")
one = {k: v for k, v in customers.slice(0, 1).to_pylist()[0].items() if k in churn.signature.input_names}
print(f"predict(customer {customers.column('customer_id')[0]}) -> {churn.predict(one)}")

predictions = churn.predict_batch(customers, extra="ignore")
scores = predictions.column("score")
top = scores.argsort()[::-1][:5]
print(f"predict_batch({customers.num_rows:,} customers): mean churn risk {scores.mean():.3f}; riskiest:")
for i in top:
    print(f"  {customers.column('customer_id')[int(i)]}  score {scores[i]:.3f}")

try:
    churn.predict({**one, "plan": "platinum"})
except foretell.InvalidInput as exc:
    print(f"a bad input is refused with a reason: {exc}")

print()
print("== movies@production: top-5 for two users")
movies = foretell.load("movies@production")
for user in (17, 42):
    result = movies.predict({"user_id": user}, k=5)
    shown = ", ".join(f"{titles[m]} ({s:.2f})" for m, s in zip(result["items"], result["scores"], strict=True))
    print(f"user {user}: {shown}")
