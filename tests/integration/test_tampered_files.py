"""Files altered on disk under FORETELL_HOME, met by real commands: never loaded as found.

A registered artifact whose bytes changed is refused by every command that would load it,
with one line naming the file; a compiled library whose bytes changed is rebuilt from the
artifact, said on stderr, and the server serves the same predictions as before.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from serving.servekit import cli, free_port, server  # tests/integration/serving, a namespace package


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    done = cli(home, "demo", "init", "--customers", "2000", "--users", "100", "--movies", "100")
    assert done.returncode == 0, done.stderr
    return home


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.unlink()  # a new file in its place, as an attacker or a bad copy would leave it
    path.write_bytes(bytes(data))


def test_an_altered_artifact_is_refused_by_every_command_that_would_load_it(home: Path) -> None:
    (artifact,) = (home / "artifacts").rglob("churn.joblib")
    flip_a_byte(artifact)
    # The compiled library would answer without the artifact: bypass it, so the artifact itself is what loads.
    shutil.rmtree(home / "compiled")
    predicted = cli(home, "predict", "churn@production", "--input", str(home / "demo" / "customers.parquet"),
                         "--id-column", "customer_id", "--extra", "ignore")  # fmt: skip
    served = cli(home, "serve", "churn@production", "--port", str(free_port()))
    for done in (predicted, served):
        assert done.returncode != 0, done.stdout
        assert "sha256" in done.stderr and str(artifact) in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_an_altered_compiled_library_is_rebuilt_and_serves_the_same_answers(home: Path, tmp_path: Path) -> None:
    body = {"dataframe_records": [{"plan": "basic", "tenure_months": 3.0}]}
    log = tmp_path / "before.log"
    with server(home, "churn@production", log=log) as url:
        before = httpx.post(f"{url}/invocations", json=body, timeout=30)
    (library,) = (home / "compiled").rglob("predictor.so")
    flip_a_byte(library)
    log = tmp_path / "after.log"
    with server(home, "churn@production", log=log) as url:
        after = httpx.post(f"{url}/invocations", json=body, timeout=30)
    said = log.read_text()
    assert "no longer has the sha256 recorded" in said and "rebuilding" in said, said
    assert after.status_code == before.status_code
    assert after.json() == before.json()
