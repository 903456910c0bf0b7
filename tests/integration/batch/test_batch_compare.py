"""`batch run --compare` and `--to-store --stage` as a user runs them: real models, files, processes and stores."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from batchkit import FEATURES, SIGNATURE, SLOW_MODEL, batch_args, cli, journal_lines, kill, make_rows, start, wait_until

import foretell
from foretell.core.feature import Feature
from foretell.core.schema import Output, Signature
from foretell.store import open_store

# A python-flavor model that sums what it is given, a missing `b` counting as nothing: with `b` allowed
# missing (version 1) it scores every row; with `b` required (version 2) it refuses the rows without one.
GAP_MODEL = """
import numpy as np


class GapSum:
    signature = None

    @classmethod
    def load(cls, path):
        return cls()

    def predict(self, columns):
        return np.nansum([columns[n] for n in ("a", "b", "c", "d")], axis=0)
"""

N_ROWS = 10_000


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """linear/1 (production), linear/2 (the same model again), linear/3 (retrained on another target);
    slow/1 and slow/2; gaps/1 (accepts a missing b) and gaps/2 (refuses it)."""
    import joblib
    from sklearn.linear_model import LinearRegression

    home = tmp_path_factory.mktemp("compare-home")
    files = tmp_path_factory.mktemp("compare-models")
    rows = make_rows(500, seed=1)
    x = np.column_stack([rows.column(n).to_numpy() for n in FEATURES])
    for i, coefficients in enumerate(([1.0, -2.0, 0.5, 3.0], [1.0, -2.0, 0.5, 3.0], [1.2, -2.0, 0.4, 3.0])):
        path = files / f"linear-{i}.joblib"
        joblib.dump(LinearRegression().fit(x, x @ coefficients), path)
        foretell.register("linear", path, signature=SIGNATURE, aliases=["production"] if i == 0 else [], home=home)
    for name, source, entry in (("slow", SLOW_MODEL, "slow.py:SlowSum"), ("gaps", GAP_MODEL, "gaps.py:GapSum")):
        folder = files / name
        folder.mkdir()
        (folder / entry.split(":")[0]).write_text(source)
        for version in (1, 2):
            features = tuple(Feature(n, allow_missing=name == "gaps" and n == "b" and version == 1) for n in FEATURES)
            foretell.register(
                name,
                folder,
                flavor="python",
                signature=Signature(features, (Output("score", "score"),)),
                flavor_options={"class": entry},
                aliases=["production"] if version == 1 else [],
                home=home,
            )
    return home


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compare-inputs") / "rows.parquet"
    pq.write_table(make_rows(N_ROWS, seed=4), path, row_group_size=3_000)
    return path


def report_of(output: Path) -> dict[str, Any]:
    assert (output / "_SUCCESS").is_file()
    report: dict[str, Any] = json.loads((output / "_compare.json").read_text())
    return report


def test_an_identical_challenger_differs_by_nothing_and_passes(home, rows, tmp_path):
    output = tmp_path / "out"
    result = foretell.run_batch(
        "linear@production", rows, output, home=home, compare="2", chunk_rows=2_500, workers=2, ledger=False
    )
    part = pq.read_table(output)
    assert part.num_rows == N_ROWS
    np.testing.assert_array_equal(part.column("challenger_score").to_numpy(), part.column("score").to_numpy())
    assert part.column("score_diff").to_pylist() == [0.0] * N_ROWS
    assert part.column("label_flipped").null_count == N_ROWS  # a regressor makes no decision: never flipped
    report = report_of(output)
    assert report["champion"] == {"model": "linear", "version": 1, "uri": "models:/linear/1"}
    assert report["challenger"] == {"model": "linear", "version": 2, "uri": "models:/linear/2"}
    assert report["rows"] == N_ROWS
    assert report["summary"]["compared"] == N_ROWS
    assert report["summary"]["score_diff"] == {"p50": 0.0, "p90": 0.0, "p99": 0.0}
    assert report["summary"]["challenger"]["requests"] == N_ROWS
    assert report["summary"]["challenger"]["errors"] == 0
    assert report["guards"]["min_requests"] == 1000
    assert report["verdict"]["passed"] is True, report["verdict"]
    assert set(report) == {"champion", "challenger", "rows", "summary", "stats", "guards", "verdict"}
    assert result.compare is not None
    assert result.compare["verdict"] == report["verdict"]
    assert result.compare["path"] == str(output / "_compare.json")


def test_a_retrained_challenger_s_differences_are_measured_and_a_guard_blocks_it(home, rows, tmp_path):
    output = tmp_path / "out"
    foretell.run_batch(
        "linear@production",
        rows,
        output,
        home=home,
        compare="linear/3",
        guards=["max_score_diff_p99=0.01"],
        chunk_rows=2_500,
        workers=1,
        ledger=False,
    )
    part = pq.read_table(output).sort_by("id")
    inputs = pq.read_table(rows).sort_by("id").select(FEATURES)
    champion, challenger = (
        np.asarray(foretell.load(uri, home=home).predict_batch(inputs).column("score"), dtype=np.float64)
        for uri in ("linear/1", "linear/3")
    )
    expected = np.abs(champion - challenger)
    np.testing.assert_allclose(part.column("score_diff").to_numpy(), expected, rtol=1e-12, atol=1e-12)
    report = report_of(output)
    p99 = report["summary"]["score_diff"]["p99"]
    assert p99 == pytest.approx(np.quantile(expected, 0.99), rel=0.03)  # the sketch's 1 %, plus rank rounding
    assert report["guards"]["max_score_diff_p99"] == 0.01
    assert report["verdict"]["passed"] is False
    [reason] = report["verdict"]["reasons"]
    assert reason.startswith("promotion blocked by max_score_diff_p99: the p99 score difference is")


def test_rows_the_challenger_refuses_keep_the_champion_s_prediction_and_go_to_rejects(home, tmp_path):
    rows = tmp_path / "gaps.parquet"
    pq.write_table(make_rows(2_000, seed=6, bad_every=10), rows)  # every tenth row has no b
    output = tmp_path / "out"
    result = foretell.run_batch("gaps@production", rows, output, home=home, compare="2", chunk_rows=500, workers=1)
    assert (result.rows, result.scored, result.rejected) == (2_000, 2_000, 0)
    part = pq.read_table(output).sort_by("id")
    gaps = part.column("challenger_score").is_null().to_numpy(zero_copy_only=False)
    assert gaps.sum() == 200 and part.column("score").null_count == 0
    assert part.column("score_diff").is_null().to_numpy(zero_copy_only=False).tolist() == gaps.tolist()
    rejects = pq.read_table(output / "_rejects")
    assert rejects.num_rows == 200
    assert sorted(rejects.column("id").to_pylist()) == sorted(np.array(part.column("id").to_pylist())[gaps])
    assert all(r.startswith("challenger models:/gaps/2: ") and "'b'" in r for r in rejects.column("reason").to_pylist())
    report = report_of(output)
    assert report["summary"]["challenger"]["errors"] == 200
    assert report["summary"]["champion"]["errors"] == 0
    assert report["summary"]["compared"] == 1_800
    assert report["verdict"]["passed"] is False
    assert report["verdict"]["reasons"][0].startswith("max_error_rate broken: the challenger failed 200 of 2000")


def test_a_compare_job_killed_mid_way_resumes_to_one_complete_comparison(home, tmp_path):
    n = 3_000
    rows = tmp_path / "rows.parquet"
    pq.write_table(make_rows(n, seed=5), rows)
    output = tmp_path / "out"
    job = start(home, rows, output, "--workers", "2", "--compare", "2")
    wait_until(lambda: journal_lines(output) >= 5, job)
    kill(job)
    recorded = journal_lines(output)
    assert 5 <= recorded < n // 100
    resumed = cli(home, *batch_args(rows, output, "--compare", "2", "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["resumed_chunks"] >= recorded
    ids = pq.read_table(output).column("id").to_pylist()
    assert sorted(ids) == [f"r{i:06d}" for i in range(n)]  # every row exactly once
    report = report_of(output)
    assert report["rows"] == n
    assert report["summary"]["compared"] == n
    assert report["summary"]["champion"]["requests"] == report["summary"]["challenger"]["requests"] == n
    assert report["stats"]["champion"]["latency"]["count"] == n // 100  # one sample per chunk, none twice
    assert summary["compare"]["verdict"] == report["verdict"]


def test_single_file_output_keeps_its_comparison_beside_it(home, rows, tmp_path):
    target = tmp_path / "scores.parquet"
    foretell.run_batch(
        "linear/1", rows, target, home=home, compare="2", single_file=True, chunk_rows=5_000, workers=1, ledger=False
    )
    assert pq.read_table(target).num_rows == N_ROWS
    report = json.loads((tmp_path / "scores.parquet.compare.json").read_text())
    assert report["rows"] == N_ROWS and report["verdict"]["passed"] is True


def test_the_ledger_indexes_the_champion_s_outputs_only(home, rows, tmp_path):
    ledger = tmp_path / "ledger"
    result = foretell.run_batch(
        "linear/1", rows, tmp_path / "out", home=home, compare="3", chunk_rows=5_000, workers=1, ledger=ledger
    )
    index = json.loads((ledger / "batch" / "model=linear" / f"{result.job_id}.json").read_text())
    assert index["outputs"] == ["score"] and index["version"] == 1


def test_the_cli_prints_the_comparison_and_its_verdict(home, rows, tmp_path):
    output = str(tmp_path / "o")
    done = cli(home, "batch", "run", "linear/1", "--input", str(rows), "--output", output, "--compare", "3")
    assert done.returncode == 0, done.stderr
    assert "models:/linear/3 against models:/linear/1" in done.stdout
    assert f"compared {N_ROWS:,} rows: score diff p50" in done.stdout
    assert "verdict: passed" in done.stdout  # no divergence guard was set


def test_stage_writes_the_generation_under_model_slash_version_and_leaves_the_champion_s_alone(home, rows, tmp_path):
    store = open_store(home)
    try:
        before = store.current_generation("linear")
        output = str(tmp_path / "o")
        done = cli(home, "batch", "run", "linear/3", "--input", str(rows), "--output", output, "--to-store", "--stage")
        assert done.returncode == 0, done.stderr
        assert "staged in the store as linear/3" in done.stdout
        assert store.current_generation("linear") == before
        assert store.current_generation("linear/3") is not None
        found = store.get_many("linear/3", ["r000000", "r000001"])
        assert {p.model_version for p in found.values()} == {3}
        part = pq.read_table(tmp_path / "o").sort_by("id").slice(0, 1).to_pylist()[0]
        assert found["r000000"].prediction["score"] == part["score"]
        assert not store.get_many("linear", ["r000000"])
    finally:
        store.close()


def test_stage_on_redis_publishes_the_staged_generation_beside_the_champion_s(home, rows, tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[2] / "contract"))  # the throwaway redis-server of the store tests
    import redis_server

    with redis_server.shared() as url:
        store = open_store(home, url)
        try:
            before = store.current_generation("linear")
            result = foretell.run_batch(
                "linear/3", rows, tmp_path / "o", home=home, to_store=True, stage=True, store_url=url, ledger=False
            )
            assert result.store == "linear/3"
            assert store.current_generation("linear") == before
            assert store.current_generation("linear/3") is not None
            assert store.stats("linear/3")["rows"] == N_ROWS
            assert {p.model_version for p in store.get_many("linear/3", ["r000000", "r009999"]).values()} == {3}
        finally:
            store.close()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--compare", "99"), "99"),
        (("--compare", "nosuch@production"), "nosuch"),
        (("--stage",), "--stage goes with --to-store"),
        (("--compare", "2", "--guard", "max_speed=3"), "there is no guard 'max_speed'"),
        (("--compare", "2", "--guard", "max_error_rate=2"), "guard max_error_rate is a rate between 0 and 1"),
        (("--guard", "max_error_rate=0.1"), "--guard goes with --compare"),
    ],
)
def test_bad_arguments_are_one_line_errors(home, rows, tmp_path, extra, message):
    output = tmp_path / "o"
    refused = cli(home, "batch", "run", "linear/1", "--input", str(rows), "--output", str(output), *extra)
    assert refused.returncode == 1, refused.stdout
    assert message in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert not (output / "_foretell" / "job.json").exists()  # refused before a job was recorded
