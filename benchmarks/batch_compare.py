"""`batch run --compare` against a single-model job on the same input: the price of scoring twice.

    flock /tmp/foretell-bench.lock .venv/bin/python benchmarks/batch_compare.py                # 500,000 rows
    flock /tmp/foretell-bench.lock .venv/bin/python benchmarks/batch_compare.py --rows 100000  # a quick look
    flock /tmp/foretell-bench.lock .venv/bin/python benchmarks/batch_compare.py --predictor original  # scikit-learn

It writes the demo churn population as Parquet, trains the demo churn model twice (two seeds: a
retrained version whose scores really differ) and registers both as a user does (so each is compiled,
and the jobs score with the compiled predictors). Then, alternating in one run so that the machine's
noise falls on both alike, `foretell batch run churn/1` (a subprocess, as a user runs it) and
`foretell batch run churn/1 --compare 2`, `--repeat` times each. The figure is the median of the
per-pair ratios of wall time compare ÷ single (target ≤ 2.1: each chunk is read once, scored twice, and written
with the challenger's columns beside the champion's). `--predictor original` runs both jobs with
scikit-learn's own predictors (worker processes) instead of the compiled ones (threads). The CPU
seconds each job used (its own and its workers', from `getrusage`) are reported beside the wall
times: a busy neighbour stretches wall time much more than the CPU a job needs. (With `original`,
the workers are the fork server's children, which it never waits for: their CPU is not counted
there, so read the wall times.)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def prepare(work: Path, rows: int) -> tuple[Path, Path]:
    """The input file and a home with churn/1 and churn/2 (retrained with another seed), both compiled."""
    import joblib
    import pyarrow as pa
    import pyarrow.parquet as pq

    import foretell
    from foretell.demo.churn import CHURN_SIGNATURE, generate_customers, train_churn

    customers = generate_customers(rows, seed=7)
    source = work / "customers.parquet"
    pq.write_table(customers.drop(["churned"]), source)
    home = work / "home"
    train = customers.slice(0, 20_000)
    sample = customers.slice(20_000, 5_000).drop(["customer_id", "churned"])
    for seed in (7, 8):
        path = work / f"churn-{seed}.joblib"
        joblib.dump(train_churn(train.filter(pa.array(_half(train.num_rows, seed))), seed), path)
        info = foretell.register("churn", path, flavor="sklearn", signature=CHURN_SIGNATURE, sample=sample, home=home)
        print(f"registered {info.uri}: compiled {bool(info.compiled_passed)}", file=sys.stderr)
    return home, source


def _half(n: int, seed: int) -> Any:
    """A different 80 % of the training rows for each version: a retrained model, not a copy."""
    import numpy as np

    return np.random.default_rng(seed).random(n) < 0.8


def job(home: Path, source: Path, output: Path, *extra: str) -> tuple[float, float, dict[str, Any]]:
    """Wall seconds, CPU seconds (user + system, of the job and every process it waited for), its summary."""
    command = [sys.executable, "-m", "foretell", "batch", "run", "churn/1", "--input", str(source)]
    command += ["--output", str(output), "--no-ledger", "--json", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "FORETELL_HOME": str(home)}, check=False
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[3:6])} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return seconds, cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--predictor", choices=("auto", "original"), default="auto")
    args = parser.parse_args()
    predictor = ("--predictor", args.predictor)
    with tempfile.TemporaryDirectory(prefix="foretell-bench-compare-") as scratch:
        work = Path(scratch)
        home, source = prepare(work, args.rows)
        job(home, source, work / "warm", *predictor)  # the compiled libraries built and cached, files in the page cache
        single: list[float] = []
        compared: list[float] = []
        cpu: dict[str, list[float]] = {"single": [], "compare": []}
        last: dict[str, Any] = {}
        for i in range(args.repeat):
            for kind, times in (("single", single), ("compare", compared)):
                extra = (*predictor, "--compare", "2") if kind == "compare" else predictor
                seconds, used, result = job(home, source, work / f"{kind}-{i}", *extra)
                times.append(seconds)
                cpu[kind].append(used)
                if kind == "compare":
                    last = result
                print(
                    f"{kind:>8} run {i + 1}: {seconds:.2f} s, {used:.2f} CPU s ({result['predictor']} predictor)",
                    file=sys.stderr,
                )
        ratios = [c / s for c, s in zip(compared, single, strict=True)]
        cpu_ratios = [c / s for c, s in zip(cpu["compare"], cpu["single"], strict=True)]
        summary = last["compare"]["summary"]
        report = {
            "rows": args.rows,
            "predictor": last["predictor"],
            "single_s": single,
            "compare_s": compared,
            "single_median_s": statistics.median(single),
            "compare_median_s": statistics.median(compared),
            "ratios": ratios,
            "ratio_median": statistics.median(ratios),
            "single_cpu_s": cpu["single"],
            "compare_cpu_s": cpu["compare"],
            "cpu_ratios": cpu_ratios,
            "cpu_ratio_median": statistics.median(cpu_ratios),
            "target": 2.1,
            "score_diff_p99": summary["score_diff"]["p99"],
            "label_flip_rate": summary["label_flip_rate"],
            "verdict": last["compare"]["verdict"],
        }
        print(json.dumps(report, indent=2))
        print(
            f"\n{args.rows:,} rows: single {report['single_median_s']:.2f} s, "
            f"--compare {report['compare_median_s']:.2f} s"
            f" (median of {args.repeat}); compare ÷ single per pair {', '.join(f'{r:.2f}' for r in ratios)},"
            f" median {report['ratio_median']:.2f}× (target ≤ 2.1×); CPU seconds compare ÷ single, median"
            f" {report['cpu_ratio_median']:.2f}×",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
