"""Helpers for the batch tests: real models and real input files (imported by name: tests are not a package)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from foretell.batch.manifest import JobFolder
from foretell.core.feature import Feature
from foretell.core.schema import Output, Signature

FEATURES = ["a", "b", "c", "d"]
SIGNATURE = Signature(tuple(Feature(n) for n in FEATURES), (Output("score", "score"),))

# A real python-flavor model whose every call takes a little while, so a test can kill a
# job between chunks, mid-chunk, or before its first chunk, as a slow model would allow.
SLOW_MODEL = """
import time
import numpy as np


class SlowSum:
    signature = None

    @classmethod
    def load(cls, path):
        return cls()

    def predict(self, columns):
        time.sleep(0.02)
        return np.sum([columns[n] for n in ("a", "b", "c", "d")], axis=0) * 1.5
"""


def make_rows(n: int, seed: int = 0, bad_every: int | None = None) -> pa.Table:
    rng = np.random.default_rng(seed)
    values = {name: rng.normal(size=n).round(6) for name in FEATURES}
    if bad_every:
        values["b"][::bad_every] = np.nan
    return pa.table({"id": [f"r{i:06d}" for i in range(n)], **values, "segment": rng.choice(["x", "y"], n)})


def cli(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FORETELL_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "foretell", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


CHUNK = 100


def batch_args(rows: Path, output: Path, *extra: str, model: str = "slow@production") -> list[str]:
    """`batch run` arguments for the kill tests: one chunk per CHUNK rows, a JSON summary."""
    return [
        "batch",
        "run",
        model,
        "--input",
        str(rows),
        "--output",
        str(output),
        "--chunk-rows",
        str(CHUNK),
        "--json",
        *extra,
    ]


def start(home: Path, rows: Path, output: Path, *extra: str, model: str = "slow@production") -> subprocess.Popen[str]:
    env = {**os.environ, "FORETELL_HOME": str(home)}
    command = [sys.executable, "-m", "foretell", *batch_args(rows, output, *extra, model=model)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(condition: Callable[[], bool], job: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert job.poll() is None, f"the job ended before the moment to kill it: {job.communicate()}"
        assert time.monotonic() < deadline, "the moment to kill never came"
        time.sleep(0.005)


def journal_lines(output: Path) -> int:
    journal = JobFolder(output).journal
    return len(journal.read_text().splitlines()) if journal.is_file() else 0


def kill(job: subprocess.Popen[str], sig: int = signal.SIGKILL) -> str:
    """Signal the job, wait for it to end, and return what it wrote on stderr (its pipes are closed then).

    After a SIGKILL its workers may still hold the pipes open for a moment: stderr is read
    only after a signal the job handles, when everything it started has ended with it.
    """
    job.send_signal(sig)
    job.wait(timeout=30)
    assert job.stdout is not None and job.stderr is not None
    stderr = "" if sig == signal.SIGKILL else job.stderr.read()
    job.stdout.close()
    job.stderr.close()
    return stderr


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc (children of children included)."""
    found: set[int] = set()
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    children = [int(c) for c in handle.read().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
            found.update(children)
            stack.extend(children)
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):  # gone between the open and the read
        return False
