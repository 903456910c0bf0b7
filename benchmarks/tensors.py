"""Named tensors against one tensor: one row per request, side by side on the same server.

    .venv/bin/python benchmarks/tensors.py [--seconds 8] [--rounds 2]

`tritonclient` users send a tabular row as one tensor per feature, named as the features;
the fast path is one `[1, n]` tensor. This serves two models from one server worker on
core 0 (wrk on core 1), and measures both request forms at c=1 and c=64, interleaved
(one form, then the other, for each point and round; the best round of each is kept, as
the machine is shared and drifts):

- `hgb32`: a compiled 200-tree `HistGradientBoostingClassifier` on 32 float features
  (`make_classification(20000, 32)` as float32), registered as a user would
  (its signature read from the model). One `[1, 32]` FP32 tensor against 32 FP32 `[1]` tensors, as JSON; and the 32
  tensors as binary data (`tritonclient`'s default).
- `churn`: the demo churn model, 5 category features and 26 floats. One `[1, 31]` FP64
  tensor (categories as codes) against 5 BYTES tensors (category names) and 26 FP64 ones.

Prints req/s, p50 and p99 of each, and the named / one-tensor ratio of req/s; the target is
≥ 0.8x at c=1 and c=64. Needs wrk (Debian package `wrk`) and taskset.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "integration" / "serving"))
sys.path.insert(0, str(Path(__file__).parent))
from servekit import free_port

from serve import wait_ready, wrk

TARGET = 0.8

# The body is read from a file: binary bodies hold bytes a Lua string literal cannot.
LUA = """
wrk.method = "POST"
local file = io.open("{path}", "rb")
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
{extra}
"""


def one_tensor(row: np.ndarray, datatype: str) -> bytes:
    return json.dumps(
        {"inputs": [{"name": "input", "datatype": datatype, "shape": [1, len(row)], "data": row.tolist()}]}
    ).encode()


def named_tensors(values: dict[str, Any], datatypes: dict[str, str]) -> bytes:
    inputs = [{"name": n, "datatype": datatypes[n], "shape": [1], "data": [v]} for n, v in values.items()]
    return json.dumps({"inputs": inputs}).encode()


def named_binary(values: dict[str, float]) -> tuple[bytes, int]:
    """The FP32 tensors as `tritonclient` sends them: a JSON header, then each tensor's raw bytes."""
    inputs = [{"name": n, "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}} for n in values]
    header = json.dumps({"inputs": inputs}).encode()
    return header + b"".join(struct.pack("<f", v) for v in values.values()), len(header)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("benchmarks/tensors.py needs wrk: apt-get install wrk")

    import joblib
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier

    import foretell
    from foretell.demo.churn import CHURN_SIGNATURE, features_matrix, generate_customers, train_churn

    with tempfile.TemporaryDirectory(prefix="foretell-tensors-bench-") as scratch:
        work = Path(scratch)
        home = work / "home"
        x, y = make_classification(20_000, 32, random_state=0)
        x = x.astype(np.float32)
        joblib.dump(HistGradientBoostingClassifier(max_iter=200, random_state=0).fit(x, y), work / "hgb.joblib")
        hgb = foretell.register("hgb32", work / "hgb.joblib", flavor="sklearn", home=home)
        customers = generate_customers(20_000, seed=1)
        joblib.dump(train_churn(customers, seed=7), work / "churn.joblib")
        churn = foretell.register(
            "churn", work / "churn.joblib", flavor="sklearn", signature=CHURN_SIGNATURE, home=home
        )
        for info in (hgb, churn):
            assert info.compiled is not None, "registration did not compile"
            assert info.compiled["status"] == "passed", info.compiled

        bodies: dict[tuple[str, str], tuple[bytes, int | None]] = {}
        hgb_names = foretell.load("hgb32/1", home=home).signature.input_names
        row = x[1]
        bodies["hgb32", "one [1, 32] tensor"] = one_tensor(row, "FP32"), None
        floats = {name: float(v) for name, v in zip(hgb_names, row, strict=True)}
        bodies["hgb32", "32 named tensors"] = named_tensors(floats, dict.fromkeys(hgb_names, "FP32")), None
        bodies["hgb32", "32 named, binary"] = named_binary(floats)
        table = customers.select(CHURN_SIGNATURE.input_names)
        complete = next(
            i for i in range(table.num_rows) if all(v is not None for v in table.slice(i, 1).to_pylist()[0].values())
        )
        customer = table.slice(complete, 1)  # JSON has no NaN, and BYTES no null: a customer with every feature
        bodies["churn", "one [1, 31] tensor"] = one_tensor(features_matrix(customer)[0], "FP64"), None
        values = {f.name: customer.column(f.name)[0].as_py() for f in CHURN_SIGNATURE.inputs}
        kinds = {f.name: "BYTES" if f.categories else "FP64" for f in CHURN_SIGNATURE.inputs}
        bodies["churn", "31 named (5 BYTES)"] = named_tensors(values, kinds), None

        scripts: dict[tuple[str, str], Path] = {}
        for n, (key, (body, json_length)) in enumerate(bodies.items()):
            (work / f"body-{n}").write_bytes(body)
            extra = "" if json_length is None else f'wrk.headers["Inference-Header-Content-Length"] = "{json_length}"'
            script = work / f"post-{n}.lua"
            script.write_text(LUA.replace("{path}", str(work / f"body-{n}")).replace("{extra}", extra))
            scripts[key] = script

        port = free_port()
        env = {**os.environ, "FORETELL_HOME": str(home)}
        command = ["taskset", "-c", "0", sys.executable, "-m", "foretell", "serve", "hgb32/1", "churn/1"]
        server = subprocess.Popen(
            [*command, "--port", str(port), "--reload-seconds", "0"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url)
            for (model, form), (body, json_length) in bodies.items():  # every form answers, with one score
                headers = {} if json_length is None else {"Inference-Header-Content-Length": str(json_length)}
                answer = httpx.post(f"{url}/v2/models/{model}/infer", content=body, headers=headers)
                assert answer.status_code == 200, (model, form, answer.text)
            results: dict[tuple[str, str, int], dict[str, float]] = {}
            for _ in range(args.rounds):
                for c in (1, 64):
                    for model, form in bodies:
                        r = wrk(f"{url}/v2/models/{model}/infer", scripts[model, form], c, args.seconds)
                        best = results.get((model, form, c))
                        if best is None or r["rps"] > best["rps"]:
                            results[model, form, c] = r
        finally:
            server.terminate()
            server.wait(timeout=30)

    print(
        f"# tensors: one row per request, 1 server worker on core 0, wrk on core 1, {args.seconds} s per point, "
        f"best of {args.rounds} interleaved rounds"
    )
    print(f"{'model':<6} {'request':<20} {'conc':>4} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'err':>4} {'ratio':>6}")
    met = True
    for c in (1, 64):
        for model, form in bodies:
            r = results[model, form, c]
            one = next(results[m, f, c] for m, f in bodies if m == model and f.startswith("one"))
            ratio = r["rps"] / one["rps"]
            if not form.startswith("one"):
                met = met and ratio >= TARGET
            print(
                f"{model:<6} {form:<20} {c:>4} {r['rps']:>8,.0f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} "
                f"{r['errors']:>4.0f} {ratio:>5.2f}x"
            )
    print(f"target: named / one tensor ≥ {TARGET}x req/s at c=1 and c=64 -> {'met' if met else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
