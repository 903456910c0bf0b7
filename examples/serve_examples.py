"""Write a ready-to-send request for the demo churn model and print how to call the server.

Used by `make run` just before it starts `foretell serve`; the request is one customer, one
tensor per feature (category features as BYTES), in the Open Inference Protocol.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pyarrow.parquet as pq

import foretell

home = Path(os.environ.get("FORETELL_HOME", ".foretell"))
port = sys.argv[1] if len(sys.argv) > 1 else "8000"
churn = foretell.load("churn@production")
row = pq.read_table(home / "demo" / "customers.parquet").slice(0, 1).to_pylist()[0]
inputs = []
for feature in churn.signature.inputs:
    value = row[feature.name]
    datatype = "BYTES" if feature.categories else "FP64"
    inputs.append({"name": feature.name, "datatype": datatype, "shape": [1], "data": [value]})
request = home / "demo" / "request.json"
request.write_text(json.dumps({"id": row["customer_id"], "inputs": inputs}))
url = f"http://127.0.0.1:{port}"
print(f"""
== the server: {url} (Ctrl-C to stop). Try, from another terminal:
  curl -s {url}/v2/health/ready
  curl -s {url}/v2/models/churn
  curl -s {url}/v2/models/churn/infer -H 'Content-Type: application/json' -d @{request}
  curl -s {url}/v2/models/movies/infer \\
       -d '{{"inputs": [{{"name": "user_id", "datatype": "INT64", "shape": [1], "data": [17]}}]}}'
  curl -s {url}/v1/models/movies/predictions/17            # last night's top-10 (hybrid lookup)
  curl -s {url}/v1/events -d '{{"type": "rating", "user_id": 17, "movie_id": 1, "rating": 5}}'
  curl -s {url}/v1/models/churn/predictions/{row["customer_id"]}?fresh=true
  curl -s {url}/metrics | grep foretell_requests
  python -c "import tritonclient.http as t, numpy as np; c = t.InferenceServerClient('127.0.0.1:{port}'); \\
x = t.InferInput('user_id', [2], 'INT64'); x.set_data_from_numpy(np.array([17, 42])); \\
print(c.infer('movies', [x]).as_numpy('items'))"
""")
