"""Batch scoring speed and memory, against the naive loop, the in-memory limit, the I/O floor and pandas.

    .venv/bin/python benchmarks/batch.py                 # 1M and 5M rows
    .venv/bin/python benchmarks/batch.py --rows 200000   # a quick look
    .venv/bin/python benchmarks/batch.py --engine ray    # also on Ray (the ray extra)
    .venv/bin/python benchmarks/batch.py --model hgb32   # compiled batch: the 200-tree HGB, 32 float32 features

For each size it writes the demo churn population as Parquet and measures, in one run:

- foretell: `foretell batch run` as a user runs it (a subprocess), with the compiled predictor
  (registration compiles the model) and again with `--predictor original`; wall time and peak RSS of
  its whole process tree;
- in-memory limit: the raw model on the whole feature matrix already in memory, using every
  core (HistGradientBoosting predicts with OpenMP over rows), no I/O;
- I/O floor: read the input and write an output of the same shape and size, no model;
- pandas whole-table: read_parquet, encode, predict_proba, to_parquet (a subprocess, peak RSS);
- the naive loop `for row in rows: model.predict_proba([row])`, timed on 20,000 rows and scaled;
- with `--engine ray`: the same job with `--engine ray` on a local Ray instance of this machine's
  cores, beside a plain Ray Data job doing the same scoring (read_parquet, map_batches with an
  actor per CPU loading the same predictor through foretell, write_parquet);
- Dask, when installed in this environment.

With `--model hgb32` it measures the compiled batch path instead (issue 15): a
`HistGradientBoostingClassifier(max_iter=200)` trained here on `make_classification(20000, 32)` as
float32 (early stopping off, so it has its 200 trees), registered as a user registers it (so compiled),
and 1M rows of float32 features written as Parquet. In one run: `foretell batch run` (default engine and
predictor), pandas whole-table (read_parquet, predict_proba, to_parquet), the I/O floor, and the
in-memory limit of the compiled predictor (the whole matrix already in memory, cut in halves scored on
one thread per core).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

CORES = len(os.sched_getaffinity(0))


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants, from /proc."""
    total = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    stack += [int(c) for c in children.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def measured(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS of the process tree (sampled every 20 ms), and stdout."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(process.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    done.set()
    sampler.join()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed: {err[-2000:]}")
    return seconds, peak, out


# -- contenders that run in their own process (python benchmarks/batch.py --contender NAME ...) ---------


def contender_pandas(model_path: str, source: str, target: str) -> None:
    import joblib
    import numpy as np
    import pandas as pd

    from foretell.demo.churn import CHURN_SIGNATURE

    model = joblib.load(model_path)
    frame = pd.read_parquet(source)
    columns = []
    for feature in CHURN_SIGNATURE.inputs:
        if feature.categories:
            columns.append(pd.Categorical(frame[feature.name], categories=feature.categories).codes.astype(float))
        else:
            columns.append(frame[feature.name].to_numpy(dtype=float))
    proba = model.predict_proba(np.column_stack(columns))
    out = pd.DataFrame({"customer_id": frame["customer_id"], "score": proba[:, 1], "label": proba.argmax(axis=1)})
    out.to_parquet(target)


def contender_io_floor(source: str, target: str) -> None:
    """Stream the input and write an output shaped like foretell's, with no model in between."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    Path(target).mkdir(parents=True, exist_ok=True)
    for i, batch in enumerate(ds.dataset(source).to_batches(batch_size=65_536)):
        n = batch.num_rows
        zeros = pa.array([0.5] * n, pa.float64())
        out = pa.table(
            {
                "customer_id": batch.column("customer_id"),
                "score": zeros,
                "label": pa.array([0] * n, pa.int64()),
                "proba": pa.FixedSizeListArray.from_arrays(pa.array([0.5] * (2 * n)), 2),
                "model_version": pa.array([1] * n, pa.int64()),
                "predicted_at": pa.array([0] * n, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            }
        )
        pq.write_table(out, f"{target}/part-{i:06d}.parquet")


def contender_in_memory(model_path: str, source: str) -> None:
    import joblib
    import pyarrow.parquet as pq
    from threadpoolctl import threadpool_limits

    from foretell.demo.churn import features_matrix

    model = joblib.load(model_path)
    matrix = features_matrix(pq.read_table(source))
    with threadpool_limits(CORES):
        started = time.perf_counter()
        model.predict_proba(matrix)
    print(json.dumps({"seconds": time.perf_counter() - started}))


def contender_naive(model_path: str, source: str, rows: int) -> None:
    import joblib
    import pyarrow.parquet as pq
    from threadpoolctl import threadpool_limits

    from foretell.demo.churn import features_matrix

    model = joblib.load(model_path)
    matrix = features_matrix(pq.read_table(source).slice(0, rows)).tolist()
    with threadpool_limits(1):
        started = time.perf_counter()
        for row in matrix:
            model.predict_proba([row])
    print(json.dumps({"seconds": time.perf_counter() - started, "rows": rows}))


def contender_ray_data(address: str, home: str, source: str, target: str) -> None:
    """A plain Ray Data job doing the same scoring: read_parquet, map_batches with an actor per CPU that
    loads the same (compiled) predictor through foretell, write_parquet. No journal, no resume, no rejects."""
    import logging

    import pyarrow as pa
    import ray
    import ray.data

    import foretell

    ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    ray.data.DataContext.get_current().enable_progress_bars = False

    class Score:
        def __init__(self) -> None:
            self.model = foretell.load("churn/1", home=home)

        def __call__(self, table: pa.Table) -> pa.Table:
            scored = self.model.predict_batch(table, extra="ignore").to_arrow()
            return scored.append_column("customer_id", table.column("customer_id"))

    cpus = int(ray.cluster_resources().get("CPU", 1))
    # Half a CPU each (a label: each still runs on a whole core), so the read tasks find a free CPU:
    # with one each, the actors held every CPU and the reads never ran.
    ray.data.read_parquet(source).map_batches(
        Score, batch_size=65_536, batch_format="pyarrow", concurrency=cpus, num_cpus=0.5
    ).write_parquet(target)


HGB_FEATURES = [f"f{i}" for i in range(32)]


def hgb_rows(n: int, seed: int) -> Any:
    """`make_classification(n, 32)` as float32 features and a row id, as an Arrow table."""
    import numpy as np
    import pyarrow as pa
    from sklearn.datasets import make_classification

    x, _ = make_classification(n, 32, random_state=seed)
    x = x.astype(np.float32)
    columns = {"row_id": pa.array(np.arange(n, dtype=np.int64))}
    columns.update({name: pa.array(x[:, i]) for i, name in enumerate(HGB_FEATURES)})
    return pa.table(columns)


def contender_pandas_hgb(model_path: str, source: str, target: str) -> None:
    import joblib
    import pandas as pd

    model = joblib.load(model_path)
    frame = pd.read_parquet(source)
    proba = model.predict_proba(frame[HGB_FEATURES])
    out = pd.DataFrame({"row_id": frame["row_id"], "score": proba[:, 1], "label": proba.argmax(axis=1)})
    out.to_parquet(target)


def contender_io_floor_hgb(source: str, target: str) -> None:
    """Read the input in chunks and write foretell's output columns with no model in between."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    Path(target).mkdir(parents=True, exist_ok=True)
    reader = pq.ParquetFile(source, pre_buffer=False)
    for i, batch in enumerate(reader.iter_batches(batch_size=65_536)):
        n = batch.num_rows
        half = np.full(n, 0.5)
        out = pa.table(
            {
                "row_id": batch.column("row_id"),
                "score": half,
                "label": np.zeros(n, np.int64),
                "proba": pa.FixedSizeListArray.from_arrays(pa.array(np.full(2 * n, 0.5)), 2),
                "model_version": np.ones(n, np.int64),
                "predicted_at": pa.array(np.zeros(n, np.int64)).cast(pa.timestamp("us", tz="UTC")),
            }
        )
        pq.write_table(out, f"{target}/part-{i:06d}.parquet")


def contender_in_memory_compiled(home: str, source: str) -> None:
    """The compiled predictor on the whole matrix, already coerced, in one half per core on threads."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.parquet as pq

    import foretell

    model = foretell.load("hgb32/1", home=home)
    assert model.variant != "original", model.variant
    columns = model.coerce(pq.read_table(source, columns=HGB_FEATURES))
    parts = columns.frame.split(-(-columns.frame.n_rows // CORES))
    with ThreadPoolExecutor(CORES) as threads:
        started = time.perf_counter()
        list(threads.map(model.predictor.predict, parts))
    print(json.dumps({"seconds": time.perf_counter() - started}))


CONTENDERS = {
    "ray_data": contender_ray_data,
    "pandas": contender_pandas,
    "io_floor": contender_io_floor,
    "in_memory": contender_in_memory,
    "naive": contender_naive,
    "pandas_hgb": contender_pandas_hgb,
    "io_floor_hgb": contender_io_floor_hgb,
    "in_memory_compiled": contender_in_memory_compiled,
}


def run_contender(name: str, *args: Any, env: dict[str, str] | None = None) -> tuple[float, int, str]:
    return measured([sys.executable, __file__, "--contender", name, *map(str, args)], env)


def bytecode_env() -> dict[str, str]:
    """Python's bytecode written and reused by every contender's process, as an installed package has it.

    With PYTHONDONTWRITEBYTECODE set (as in this project's shells), each run compiled foretell's
    modules from source again (~65 ms of every `foretell` start here), while pandas and the
    other installed packages had their bytecode all along. (Not PYTHONPYCACHEPREFIX: with it,
    Python ignores the installed packages' own bytecode.)
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    return {}


# -- the benchmark ----------------------------------------------------------------------------------------


def foretell_batch(home: Path, source: Path, output: Path, *extra: str) -> tuple[float, int, str]:
    """`foretell batch run churn/1` as a user runs it, measured (wall seconds, peak RSS, its JSON summary)."""
    command = [sys.executable, "-m", "foretell", "batch", "run", "churn/1", "--input", str(source)]
    return measured([*command, "--output", str(output), *extra, "--json"], env={"FORETELL_HOME": str(home)})


def on_ray(results: list[dict[str, Any]], work: Path, home: Path) -> None:
    """foretell's Ray engine and a plain Ray Data job, each as its own driver, on one local Ray instance."""
    import ray

    ray.init(num_cpus=CORES, include_dashboard=False, log_to_driver=False)
    address = ray.get_runtime_context().gcs_address
    try:
        for r in results:
            n, source = r["rows"], work / f"customers-{r['rows']}.parquet"
            ray_s, _, out = foretell_batch(home, source, work / f"ray-{n}", "--engine", "ray", "--ray-address", address)
            assert json.loads(out)["engine"] == "ray"
            plain_s, _, _ = run_contender("ray_data", address, home, source, work / f"ray-data-{n}")
            r.update(
                ray_seconds=ray_s,
                ray_rows_per_second=n / ray_s,
                ray_data_seconds=plain_s,
                ray_vs_plain=ray_s / plain_s,
                local_vs_ray=ray_s / r["foretell_seconds"],
            )
    finally:
        ray.shutdown()


def compiled_batch(sizes: list[int], repeat: int) -> int:
    """The compiled batch path (issue 15): `foretell batch run` on the HGB-32 model against pandas whole-table."""
    import joblib
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier

    import foretell

    with tempfile.TemporaryDirectory(prefix="foretell-bench-") as scratch:
        work = Path(scratch)
        home = work / "home"
        model_path = work / "hgb32.joblib"
        _, labels = make_classification(20_000, 32, random_state=0)
        # Early stopping (on by default past 10,000 rows) would stop near 70 trees: off, the model has its 200.
        model = HistGradientBoostingClassifier(max_iter=200, early_stopping=False, random_state=0)
        model.fit(pd.DataFrame(hgb_rows(20_000, seed=0).to_pandas()[HGB_FEATURES]), labels)
        joblib.dump(model, model_path)
        info = foretell.register("hgb32", model_path, flavor="sklearn", home=home)
        assert info.compiled is not None, "registration did not compile"
        assert info.compiled["status"] == "passed", info.compiled
        per_core = info.compiled["speed"]["compiled"]["rows_per_second"]
        results = [_compiled_batch_at(work, home, model_path, n, repeat) | {"per_core": per_core} for n in sizes]
    print(
        f"# compiled batch: HistGradientBoostingClassifier(max_iter=200, early_stopping=False), "
        f"32 float32 features, {CORES} cores; best of {repeat}"
    )
    for r in results:
        print(
            f"{r['rows']:>9,} rows: foretell {r['foretell_seconds']:5.2f} s "
            f"(peak RSS {r['foretell_peak_rss_mb']:5.0f} MB), compiled, default engine\n"
            f"           pandas   {r['pandas_seconds']:5.2f} s "
            f"(peak RSS {r['pandas_peak_rss_mb']:5.0f} MB), read_parquet + predict_proba + to_parquet\n"
            f"    {r['speedup_vs_pandas']:.2f}× pandas' speed (target ≥ 3.5×), "
            f"{r['rss_vs_pandas']:.2f}× its peak RSS (target ≤ 0.5×)\n"
            f"    limit: compiled trees on the in-memory matrix {r['in_memory_compiled_seconds']:.2f} s "
            f"({CORES} threads; {r['per_core']:,} rows/s per core at registration)"
            f" + I/O floor {r['io_floor_seconds']:.2f} s"
        )
    print(json.dumps(results))
    return 0


def _compiled_batch_at(work: Path, home: Path, model_path: Path, n: int, repeat: int) -> dict[str, Any]:
    """One size of the compiled batch benchmark: each contender `repeat` times, the fastest run kept."""
    import numpy as np
    import pyarrow.parquet as pq

    source = work / f"rows-{n}.parquet"
    pq.write_table(hgb_rows(n, seed=1), source, row_group_size=131_072)

    env = bytecode_env()

    def fore(i: int | str) -> tuple[float, int, str]:
        command = [sys.executable, "-m", "foretell", "batch", "run", "hgb32/1", "--input", str(source)]
        result = measured(
            [*command, "--output", str(work / f"out-{n}-{i}"), "--json"], env={"FORETELL_HOME": str(home), **env}
        )
        summary = json.loads(result[2])
        assert summary["predictor"] == "compiled", summary
        assert summary["scored"] == n, summary
        return result

    def pandas(i: int | str) -> tuple[float, int, str]:
        return run_contender("pandas_hgb", model_path, source, work / f"pandas-{n}-{i}.parquet", env=env)

    def io_floor(i: int | str) -> tuple[float, int, str]:
        return run_contender("io_floor_hgb", source, work / f"io-{n}-{i}", env=env)

    contenders = {"foretell": fore, "pandas": pandas, "io_floor": io_floor}
    for run in contenders.values():
        run("warm")  # not counted: writes the bytecode, warms the page cache
    # Interleaved, so that a burst of load from elsewhere on this shared machine hits every contender alike.
    runs: dict[str, list[tuple[float, int, str]]] = {name: [] for name in contenders}
    for i in range(repeat):
        for name, run in contenders.items():
            runs[name].append(run(i))
    fore_s, pandas_s, io_s = (min(r[0] for r in runs[name]) for name in contenders)
    fore_rss, pandas_rss = (max(r[1] for r in runs[name]) for name in ("foretell", "pandas"))
    in_memory = json.loads(run_contender("in_memory_compiled", home, source, env=env)[2])["seconds"]
    ours = pq.read_table(work / f"out-{n}-0", columns=["row_id", "score"]).sort_by("row_id")
    theirs = pq.read_table(work / f"pandas-{n}-0.parquet", columns=["row_id", "score"])
    assert np.allclose(ours.column("score").to_numpy(), theirs.column("score").to_numpy(), atol=1e-9)
    return {
        "rows": n,
        "foretell_seconds": fore_s,
        "foretell_peak_rss_mb": fore_rss / 2**20,
        "pandas_seconds": pandas_s,
        "pandas_peak_rss_mb": pandas_rss / 2**20,
        "speedup_vs_pandas": pandas_s / fore_s,
        "rss_vs_pandas": fore_rss / pandas_rss,
        "io_floor_seconds": io_s,
        "in_memory_compiled_seconds": in_memory,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", help="sizes to score (1M and 5M; 1M for hgb32)")
    parser.add_argument("--naive-rows", type=int, default=20_000)
    parser.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="ray: also run the job on a local Ray instance of this machine's cores, beside a plain Ray Data job",
    )
    parser.add_argument(
        "--model",
        choices=["churn", "hgb32"],
        default="churn",
        help="hgb32: the compiled batch path on a 200-tree HGB with 32 float32 features, against pandas",
    )
    parser.add_argument("--repeat", type=int, default=3, help="hgb32: runs of each contender (the best is kept)")
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.contender:
        fn = CONTENDERS[args.contender]
        fn(*[int(a) if a.isdigit() else a for a in rest])
        return 0
    if args.model == "hgb32":
        return compiled_batch(args.rows or [1_000_000], args.repeat)
    args.rows = args.rows or [1_000_000, 5_000_000]

    import joblib
    import pyarrow.parquet as pq

    import foretell
    from foretell.demo.churn import CHURN_SIGNATURE, generate_customers, train_churn

    results = []
    with tempfile.TemporaryDirectory(prefix="foretell-bench-") as scratch:
        work = Path(scratch)
        home = work / "home"
        model_path = work / "churn.joblib"
        joblib.dump(train_churn(generate_customers(20_000, seed=1), seed=7), model_path)
        info = foretell.register("churn", model_path, flavor="sklearn", signature=CHURN_SIGNATURE, home=home)
        assert info.compiled is not None, "registration did not compile"
        assert info.compiled["status"] == "passed", info.compiled
        naive = None
        for n in args.rows:
            source = work / f"customers-{n}.parquet"
            pq.write_table(generate_customers(n, seed=2), source, row_group_size=131_072)
            if naive is None:
                _, _, out = run_contender("naive", model_path, source, min(args.naive_rows, n))
                naive = json.loads(out)
            naive_seconds = naive["seconds"] / naive["rows"] * n
            runs = {}
            for predictor in ("auto", "original"):  # compiled (auto settles on it), then the framework's own
                runs[predictor] = foretell_batch(home, source, work / f"out-{n}-{predictor}", "--predictor", predictor)
                assert json.loads(runs[predictor][2])["predictor"] == (
                    "compiled" if predictor == "auto" else "original"
                )
            fore_s, fore_rss, out = runs["auto"]
            original_s, original_rss, _ = runs["original"]
            _, _, out_mem = run_contender("in_memory", model_path, source)
            in_memory = json.loads(out_mem)["seconds"]
            io_s, _, _ = run_contender("io_floor", source, work / f"io-{n}")
            pandas_s, pandas_rss, _ = run_contender("pandas", model_path, source, work / f"pandas-{n}.parquet")
            results.append(
                {
                    "rows": n,
                    "foretell_seconds": fore_s,
                    "foretell_rows_per_second": n / fore_s,
                    "foretell_peak_rss_mb": fore_rss / 2**20,
                    "original_seconds": original_s,
                    "original_rows_per_second": n / original_s,
                    "original_peak_rss_mb": original_rss / 2**20,
                    "compiled_vs_original": original_s / fore_s,
                    "naive_seconds_scaled": naive_seconds,
                    "vs_naive": naive_seconds / fore_s,
                    "in_memory_seconds": in_memory,
                    "io_floor_seconds": io_s,
                    "vs_limit_plus_floor": fore_s / (in_memory + io_s),
                    "pandas_seconds": pandas_s,
                    "pandas_peak_rss_mb": pandas_rss / 2**20,
                    "vs_pandas": fore_s / pandas_s,
                }
            )
        if args.engine == "ray":  # after the local runs, so an idle Ray instance never shares their cores
            on_ray(results, work, home)
    try:
        __import__("dask")
    except ImportError:
        print("dask: not installed in this environment, not measured")
    print(
        f"# batch: demo churn model (HistGradientBoosting, 31 features), {CORES} cores; "
        f"naive loop timed on {naive['rows'] if naive else 0:,} rows and scaled"
    )
    for r in results:
        print(
            f"{r['rows']:>9,} rows: foretell {r['foretell_seconds']:6.1f} s "
            f"({r['foretell_rows_per_second']:>9,.0f} rows/s, peak RSS {r['foretell_peak_rss_mb']:6.0f} MB), compiled\n"
            f"                 original {r['original_seconds']:6.1f} s "
            f"({r['original_rows_per_second']:>9,.0f} rows/s, peak RSS {r['original_peak_rss_mb']:6.0f} MB), "
            f"--predictor original\n"
            f"    {r['compiled_vs_original']:.2f}× the original's rows/s (target ≥ 3× at 1,000,000 rows)\n"
            f"    {r['vs_naive']:6.0f}× the naive loop ({r['naive_seconds_scaled']:.0f} s)\n"
            f"    {r['vs_limit_plus_floor']:.2f}× (in-memory limit {r['in_memory_seconds']:.1f} s"
            f" + I/O floor {r['io_floor_seconds']:.1f} s)\n"
            f"    {r['vs_pandas']:.2f}× pandas whole-table ({r['pandas_seconds']:.1f} s, "
            f"peak RSS {r['pandas_peak_rss_mb']:.0f} MB)"
        )
        if "ray_seconds" in r:
            print(
                f"    on Ray (a local instance, {CORES} CPUs, each job its own driver):\n"
                f"      foretell --engine ray {r['ray_seconds']:6.1f} s ({r['ray_rows_per_second']:>9,.0f} rows/s)\n"
                f"      plain Ray Data        {r['ray_data_seconds']:6.1f} s (read, map_batches, write_parquet)\n"
                f"      foretell / plain: {r['ray_vs_plain']:.2f}× the time (target ≤ 1.3×); "
                f"the local engine is {r['local_vs_ray']:.1f}× faster on this one machine"
            )
    if len(results) >= 2:
        growth = results[-1]["foretell_peak_rss_mb"] / results[0]["foretell_peak_rss_mb"]
        print(
            f"peak RSS at {results[-1]['rows']:,} rows / at {results[0]['rows']:,} rows: {growth:.2f}× (target ≤ 1.2×)"
        )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
