"""A disk that fills up: a batch job's output folder, and a server's ledger, each on a small tmpfs.

The batch job fails with one line naming the folder and the cause, publishes nothing, and
`foretell batch resume` finishes it once space is freed. The server keeps answering while its
ledger cannot write; the records it could not keep are counted as dropped, and recording
resumes once there is space again.

Mounting a tmpfs needs root (or CAP_SYS_ADMIN): where that is not permitted the tests skip and
say why, unless FORETELL_REQUIRE_TMPFS=1 asks for them to fail instead.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from serving.servekit import cli, server  # tests/integration/serving, a namespace package


@contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """`folder` as a tmpfs of `size` bytes (e.g. "600k"), unmounted at the end."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        why = f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}"
        if os.environ.get("FORETELL_REQUIRE_TMPFS") == "1":
            pytest.fail(why)
        pytest.skip(why)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def grow(folder: Path, size: str) -> None:
    """Free space: the same tmpfs, larger, with what it holds."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("disk-full") / "home"
    done = cli(home, "demo", "init", "--customers", "20000", "--users", "100", "--movies", "100")
    assert done.returncode == 0, done.stderr
    return home


def test_a_batch_job_on_a_full_disk_fails_publishing_nothing_and_resumes_once_there_is_space(
    home: Path, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "small", "600k") as small:
        output = small / "scores"
        done = cli(home, "batch", "run", "churn@production", "--input", str(home / "demo" / "customers.parquet"),
                        "--output", str(output), "--id-column", "customer_id", "--passthrough", "plan",
                        "--chunk-rows", "2000", "--no-ledger")  # fmt: skip
        assert done.returncode != 0
        assert "No space left on device" in done.stderr and f"could not write under {output}" in done.stderr
        assert "Nothing was published" in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert not (output / "_SUCCESS").exists() and not list(output.glob("part-*"))
        job = re.search(r"foretell batch resume (\S+)`", done.stderr)
        assert job is not None, done.stderr
        shown = cli(home, "batch", "show", job.group(1), "--json")
        assert json.loads(shown.stdout)["status"] == "failed", shown.stdout + shown.stderr

        grow(small, "20m")
        resumed = cli(home, "batch", "resume", job.group(1))
        assert resumed.returncode == 0, resumed.stderr
        assert (output / "_SUCCESS").exists()
        assert pq.read_table(output).num_rows == 20_000


def test_a_full_disk_under_the_ledger_drops_records_counted_and_serving_goes_on(home: Path, tmp_path: Path) -> None:
    customers = pq.read_table(home / "demo" / "customers.parquet").slice(0, 3000)
    rows = customers.drop_columns(["customer_id", "churned"]).to_pylist()
    records = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in rows]

    def ledger(url: str) -> dict[str, float]:
        text = httpx.get(f"{url}/metrics", timeout=10).text
        found = re.findall(r"^foretell_ledger_(records|dropped)_total (\S+)$", text, re.M)
        return {name: float(value) for name, value in found}

    def send(url: str, count: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            for i in range(0, count, 5):
                response = http.post("/invocations", json={"dataframe_records": records[i : i + 5]})
                assert response.status_code == 200, response.text

    with tmpfs(tmp_path / "ledger", "256k") as small:
        log = tmp_path / "serve.log"
        with server(home, "churn@production", "--ledger-location", str(small / "ledger"), log=log) as url:
            send(url, 3000)  # more than 256 KiB of ledger: the disk fills while every request is answered
            deadline = time.monotonic() + 30
            while ledger(url).get("dropped", 0) == 0:
                assert time.monotonic() < deadline, ledger(url)
                time.sleep(0.2)
            full = ledger(url)
            assert full["records"] + full["dropped"] <= 3000
            assert httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 200

            grow(small, "20m")
            send(url, 500)
            while ledger(url)["records"] == full["records"]:  # recording resumes once there is space
                assert time.monotonic() < deadline + 30, ledger(url)
                time.sleep(0.2)
        assert "No space left on device" in log.read_text()
