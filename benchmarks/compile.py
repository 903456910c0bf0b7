"""Original against compiled predictors, side by side in one process on one thread.

    .venv/bin/python benchmarks/compile.py [--quick] [--json]

Two models, each registered and compiled as a user would (`foretell.register`, which
compiles and proves it), then loaded twice: `predictor="original"` (the framework) and
the compiled one.

- the demo churn model: scikit-learn HistGradientBoosting, 150 trees, 31 features of which
  5 categorical, with missing values → treelite + tl2cgen, a native library;
- an LR pipeline: StandardScaler + LogisticRegression on the same 31 features → skl2onnx,
  run by ONNX Runtime.

For each: `Model.predict_batch` on one row, on 64 rows, and bulk rows/s on 65,536 rows,
the two predictors' calls interleaved (original, compiled, compiled, original, ...) so
both see the same machine. Everything on one thread (threadpoolctl), as in a worker.

Target (issue 7): one row ≥ 20× faster than the original for the demo churn model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from threadpoolctl import threadpool_limits

import foretell
from foretell.core.feature import Feature
from foretell.core.schema import Signature
from foretell.demo.churn import CHURN_SIGNATURE, features_matrix, generate_customers, train_churn


def interleaved(first: Callable[[], Any], second: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median seconds of each, calls alternating so drift hits both alike."""
    first(), second()
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(repeats):
        order = ((0, first), (1, second)) if i % 2 == 0 else ((1, second), (0, first))
        for slot, fn in order:
            started = time.perf_counter()
            fn()
            times[slot].append(time.perf_counter() - started)
    return statistics.median(times[0]), statistics.median(times[1])


def measure(
    name: str, original: foretell.Model, compiled: foretell.Model, rows: np.ndarray, quick: bool
) -> dict[str, Any]:
    one, batch, bulk = rows[:1], rows[:64], rows[:65_536]
    scale = 4 if quick else 1
    single = interleaved(lambda: original.predict_batch(one), lambda: compiled.predict_batch(one), 2000 // scale)
    sixty_four = interleaved(lambda: original.predict_batch(batch), lambda: compiled.predict_batch(batch), 600 // scale)
    whole = interleaved(lambda: original.predict_batch(bulk), lambda: compiled.predict_batch(bulk), 10 // scale + 1)
    want, got = original.predict_batch(bulk), compiled.predict_batch(bulk)
    worst = max(float(np.max(np.abs(want.column(o) - got.column(o)))) for o in ("score", "proba") if o in want.columns)
    return {
        "model": name,
        "compiler": compiled.variant,
        "single_row_us": [round(single[0] * 1e6, 1), round(single[1] * 1e6, 1)],
        "batch_64_us": [round(sixty_four[0] * 1e6, 1), round(sixty_four[1] * 1e6, 1)],
        "rows_per_second": [round(len(bulk) / whole[0]), round(len(bulk) / whole[1])],
        "speedup": {
            "single_row": round(single[0] / single[1], 1),
            "batch_64": round(sixty_four[0] / sixty_four[1], 1),
            "rows_per_second": round(whole[0] / whole[1], 2),
        },
        "max_abs_diff_65536_rows": worst,
    }


def lr_pipeline(x: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a quarter of the repeats")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="foretell-compile-bench-") as scratch:
        home = Path(scratch) / "home"
        customers = generate_customers(80_000, seed=1)
        x = features_matrix(customers)
        churn_path = Path(scratch) / "churn.joblib"
        joblib.dump(train_churn(customers.slice(0, 20_000), seed=7), churn_path)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        churn = foretell.register("churn", churn_path, flavor="sklearn", signature=CHURN_SIGNATURE, home=home)
        timings["churn"] = time.perf_counter() - started

        # The LR pipeline takes no missing values and no category codes: plain floats.
        dense = np.nan_to_num(x)
        lr_path = Path(scratch) / "lr.joblib"
        joblib.dump(lr_pipeline(dense[:20_000], customers.column("churned").to_numpy()[:20_000]), lr_path)
        lr_signature = Signature(
            tuple(Feature(f.name, "float64") for f in CHURN_SIGNATURE.inputs), CHURN_SIGNATURE.outputs
        )
        started = time.perf_counter()
        lr = foretell.register("lr", lr_path, flavor="sklearn", signature=lr_signature, home=home)
        timings["lr"] = time.perf_counter() - started

        results = []
        with threadpool_limits(1):
            for info, rows in ((churn, x), (lr, dense)):
                assert info.compiled is not None, f"{info.uri} was not compiled"
                assert info.compiled["status"] == "passed", info.compiled
                original = foretell.load(info.uri, home=home, predictor="original")
                compiled = foretell.load(info.uri, home=home)
                results.append(measure(info.name, original, compiled, rows, args.quick))

    if args.json:
        print(json.dumps({"results": results, "register_and_compile_seconds": timings}, indent=2))
        return 0
    print("# compile: original vs compiled predictor, Model.predict_batch on one thread, interleaved")
    print(f"{'model':<7} {'compiler':<9} {'':<18} {'original':>14} {'compiled':>14} {'speed-up':>9}")
    for r in results:
        o, c = r["single_row_us"]
        ratio = r["speedup"]["single_row"]
        print(f"{r['model']:<7} {r['compiler']:<9} {'1 row (µs)':<18} {o:>14,.1f} {c:>14,.1f} {ratio:>8}x")
        o, c = r["batch_64_us"]
        print(f"{'':<17} {'64 rows (µs)':<18} {o:>14,.1f} {c:>14,.1f} {r['speedup']['batch_64']:>8}x")
        o, c = r["rows_per_second"]
        print(f"{'':<17} {'bulk (rows/s)':<18} {o:>14,} {c:>14,} {r['speedup']['rows_per_second']:>8}x")
        print(f"{'':<17} max abs diff over 65,536 rows: {r['max_abs_diff_65536_rows']:.2g}")
    for name, seconds in timings.items():
        print(f"register + compile + parity proof, {name}: {seconds:.1f} s")
    churn_speedup = results[0]["speedup"]["single_row"]
    print(
        f"target: one churn row ≥ 20x faster compiled: {churn_speedup}x -> {'met' if churn_speedup >= 20 else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
