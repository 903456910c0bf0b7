"""Schedules run for real: `foretell scheduler` starts `foretell batch run` processes in a tmp FORETELL_HOME.

A schedule is made due without waiting for the clock by adding it through a ScheduleBook
whose clock says it was created hours ago; the in-process tests drive a Scheduler with a
fake clock instead. Every run itself is a real subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

import foretell
from foretell.batch.history import JobHistory
from foretell.batch.scheduler import Scheduler
from foretell.batch.schedules import ScheduleBook

# A python-flavor model slow enough (about 0.1 s a chunk) that a run is still going when a
# test ticks again or sends a signal.
SLOW_MODEL = """
import time
import numpy as np


class Slow:
    @classmethod
    def load(cls, path):
        return cls()

    def predict(self, columns):
        time.sleep(0.1)
        return columns["f0"] + columns["f1"] + columns["f2"]
"""
SIGNATURE = {
    "inputs": [{"name": "f0"}, {"name": "f1"}, {"name": "f2"}],
    "outputs": [{"name": "score", "kind": "score"}],
}
# Slow runs: 40 chunks of 50 rows, one worker, about four seconds.
SLOW_RUN = ["--chunk-rows", "50", "--workers", "1"]


def cli(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FORETELL_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "foretell", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def spawn(home: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "FORETELL_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "foretell", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A model folder per test copies these registered artifacts: (sklearn file, slow model folder)."""
    root = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    clf = root / "clf.joblib"
    joblib.dump(LogisticRegression().fit(x, (x[:, 0] + x[:, 1] > 0).astype(int)), clf)
    slow = root / "slow"
    slow.mkdir()
    (slow / "slow.py").write_text(SLOW_MODEL)
    return clf, slow


@pytest.fixture
def home(tmp_path: Path, models: tuple[Path, Path]) -> Path:
    clf, slow = models
    home = tmp_path / "home"
    foretell.register("clf", clf, aliases=["production"], home=home)
    foretell.register(
        "slow",
        slow,
        flavor="python",
        signature=SIGNATURE,
        flavor_options={"class": "slow.py:Slow"},
        aliases=["production"],
        home=home,
    )
    return home


@pytest.fixture
def rows(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    n = 2_000
    table = pa.table({"id": [f"c{i:05d}" for i in range(n)], **{f"f{j}": rng.normal(size=n) for j in range(3)}})
    path = tmp_path / "customers.parquet"
    pq.write_table(table, path)
    return path


def add_backdated(home: Path, name: str, cron: str, argv: list[str]) -> None:
    """Add a schedule as if it had been added a day ago, so its latest slot is due now."""
    ScheduleBook(home, clock=lambda: datetime.now(UTC) - timedelta(days=1)).add(name, cron, argv)


def runs(home: Path, name: str) -> list[dict[str, object]]:
    result = cli(home, "schedule", "runs", name, "--json")
    assert result.returncode == 0, result.stderr
    data: list[dict[str, object]] = json.loads(result.stdout)
    return data


def test_every_command_has_help_with_an_example(tmp_path):
    for command in (
        ["schedule", "add"],
        ["schedule", "list"],
        ["schedule", "remove"],
        ["schedule", "runs"],
        ["scheduler"],
    ):
        shown = cli(tmp_path, *command, "--help")
        assert shown.returncode == 0, shown.stderr
        assert "Example" in shown.stdout, command


def test_schedule_add_list_remove_from_the_cli(home):
    added = cli(home, "schedule", "add", "nightly", "--cron", "0 2 * * *", "--json", "--", "models", "list", "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["argv"] == ["models", "list", "--json"]  # --json after -- is the command's
    listed = json.loads(cli(home, "schedule", "list", "--json").stdout)
    assert [(s["name"], s["command"], s["last_run"]) for s in listed] == [
        ("nightly", "foretell models list --json", None)
    ]
    assert listed[0]["next_fire"].endswith("T02:00:00+00:00")
    table = cli(home, "schedule", "list")
    assert "nightly" in table.stdout and "0 2 * * *" in table.stdout

    refused = cli(home, "schedule", "add", "x", "--cron", "0 2 * *", "--", "models", "list")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "error: invalid cron expression '0 2 * *': it has 4 fields, not 5; write 'minute hour day-of-month "
        "month day-of-week', e.g. '0 2 * * *' for 02:00 UTC every day"
    ]
    typo = cli(home, "schedule", "add", "x", "--cron", "@daily", "--", "bach", "run")
    assert typo.returncode == 1 and "unknown foretell command 'bach'" in typo.stderr
    without_dashes = cli(home, "schedule", "add", "x", "--cron", "@daily", "batch", "run", "m", "--input", "a")
    assert without_dashes.returncode == 2  # an option of the command must come after --, never be misread

    assert cli(home, "schedule", "remove", "nightly").returncode == 0
    assert json.loads(cli(home, "schedule", "list", "--json").stdout) == []
    gone = cli(home, "schedule", "remove", "nightly")
    assert gone.returncode == 1 and gone.stderr.startswith("error: no schedule 'nightly'")


@pytest.mark.slow
def test_scheduler_once_runs_a_due_batch_job_and_records_it(home, rows, tmp_path):
    out = tmp_path / "scores"
    argv = ["batch", "run", "clf@production", "--input", str(rows), "--output", f"{out}/{{date}}"]
    add_backdated(home, "nightly", "0 2 * * *", argv)

    result = cli(home, "scheduler", "--once")
    assert result.returncode == 0, result.stderr
    assert "nightly: run 1" in result.stderr and "succeeded with exit code 0" in result.stderr

    (run,) = runs(home, "nightly")
    assert (run["status"], run["exit_code"]) == ("succeeded", 0)
    slot = datetime.fromisoformat(str(run["fire_time"]))
    assert slot.hour == 2 and slot <= datetime.now(UTC)
    assert (out / f"{slot:%Y-%m-%d}" / "_SUCCESS").exists()
    # The batch job recorded itself in job history; the run links to it by id.
    job = json.loads(cli(home, "batch", "show", str(run["job_id"]), "--json").stdout)
    assert (job["status"], job["rows"], job["model_uri"]) == ("succeeded", 2_000, "clf@production")

    again = cli(home, "scheduler", "--once")  # the slot is spent: nothing is due until tomorrow
    assert again.returncode == 0 and "started" not in again.stderr
    assert len(runs(home, "nightly")) == 1
    listed = json.loads(cli(home, "schedule", "list", "--json").stdout)
    assert listed[0]["last_run"]["status"] == "succeeded"


def test_scheduler_once_exits_1_when_a_run_fails(home):
    add_backdated(home, "broken", "@hourly", ["models", "show", "no-such-model"])
    result = cli(home, "scheduler", "--once")
    assert result.returncode == 1
    (run,) = runs(home, "broken")
    assert (run["status"], run["exit_code"]) == ("failed", 1)
    assert "no model named 'no-such-model'" in str(run["output_tail"])


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.slow
def test_overlapping_ticks_never_start_a_schedule_twice(home, rows, tmp_path):
    clock = Clock()
    argv = ["batch", "run", "slow@production", "--input", str(rows), "--output", f"{tmp_path}/out/{{datetime}}"]
    ScheduleBook(home, clock=clock).add("every-minute", "* * * * *", [*argv, *SLOW_RUN])
    schedulers = [Scheduler(home, clock=clock) for _ in range(4)]
    clock.now += timedelta(minutes=1)

    # Four schedulers tick at the same moment: one run starts.
    started: list[int] = []
    barrier = threading.Barrier(len(schedulers))

    def tick(scheduler: Scheduler) -> None:
        barrier.wait()
        started.extend(r.id for r in scheduler.tick())

    threads = [threading.Thread(target=tick, args=(s,)) for s in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(started) == 1

    # A minute later the run is still going: the next slot is skipped, not started beside it.
    clock.now += timedelta(minutes=1)
    assert [s.tick() for s in schedulers] == [[], [], [], []]
    history = ScheduleBook(home).runs("every-minute")
    assert [r.status for r in history] == ["skipped", "running"]
    assert history[1].pid is not None

    for s in schedulers:
        assert s.drain(timeout=120)
    first = ScheduleBook(home).runs("every-minute")[1]
    assert (first.status, first.exit_code) == ("succeeded", 0), first.output_tail
    assert first.job_id is not None and first.job_id in first.output_tail


def test_two_scheduler_processes_start_a_slot_once(home):
    add_backdated(home, "m", "@hourly", ["models", "list", "--json"])
    both = [spawn(home, "scheduler", "--once") for _ in range(2)]
    for p in both:
        p.communicate(timeout=120)
        assert p.returncode == 0
    (run,) = runs(home, "m")
    assert (run["status"], run["exit_code"]) == ("succeeded", 0)
    assert json.loads(str(run["output_tail"]))[0]["name"] == "clf"


def wait_for(check, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("signals", [1, 2])
def test_sigterm_waits_for_the_run_and_a_second_one_stops_it(home, rows, tmp_path, signals):
    argv = ["batch", "run", "slow@production", "--input", str(rows), "--output", str(tmp_path / "out")]
    add_backdated(home, "slow", "@hourly", [*argv, *SLOW_RUN])
    book = ScheduleBook(home)
    scheduler = spawn(home, "scheduler", "--poll", "0.2")
    # Wait until the batch job is scoring (it handles SIGTERM from then on), not merely started.
    wait_for(lambda: any(job["status"] == "running" for job in JobHistory(home).list()))
    for _ in range(signals):
        scheduler.send_signal(signal.SIGTERM)
        time.sleep(0.3)
    _, stderr = scheduler.communicate(timeout=120)
    assert scheduler.returncode == 0, stderr
    assert "stopping: no new runs" in stderr
    (run,) = book.runs("slow")
    if signals == 1:  # the run finished and was recorded before the scheduler exited
        assert (run.status, run.exit_code) == ("succeeded", 0), run.output_tail
        assert (tmp_path / "out" / "_SUCCESS").exists()
    else:  # asked to stop: the batch job stopped between chunks, resumable, nothing published
        assert run.status == "failed" and run.exit_code != 0, run.output_tail
        assert "asking the runs in progress to stop" in stderr
        assert not (tmp_path / "out" / "_SUCCESS").exists()
        job = json.loads(cli(home, "batch", "show", str(run.job_id), "--json").stdout)
        assert job["status"] == "interrupted"
