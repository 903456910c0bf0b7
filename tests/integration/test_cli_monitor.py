"""`foretell monitor` as a user runs it, over a ledger with known truth (tests/unit/monitor/monitorkit.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "monitor"))  # the shared ledger builder
from monitorkit import DEFECT, MODEL, Built, build, customer


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    inherited = {name: value for name, value in os.environ.items() if name != "FORETELL_LEDGER"}
    env = {**inherited, "FORETELL_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "foretell", *args], capture_output=True, text=True, env=env,
        timeout=180,
    )  # fmt: skip


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr without the import report and the progress line."""
    lines = result.stderr.splitlines()
    return [line for line in lines if line.strip() and not line.startswith(("import time:", "reading the ledger"))]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(tmp_path_factory.mktemp("monitor-cli"))


def since(built: Built) -> str:
    return (built.batch_at - timedelta(hours=1)).isoformat()


def test_json_is_the_whole_report(built: Built) -> None:
    shown = json.loads(ok(run(built.home, "monitor", MODEL, "--since", since(built), "--json")).stdout)
    assert shown["model"] == MODEL and shown["version"] == 1
    assert shown["verdict"]["status"] == "alert"
    assert shown["agreement"]["parity_defects"] == 1 and shown["agreement"]["defects"][0]["key"] == customer(DEFECT)
    assert shown["traffic"]["by_source"]["batch"]["rows"] == 2000
    assert {c["source"] for c in shown["quality"]["cells"] if c["auc"] is not None} >= {"batch", "live"}


def test_the_table_and_the_report_page(built: Built, tmp_path: Path) -> None:
    page = tmp_path / "monitor.html"
    result = ok(run(built.home, "monitor", MODEL, "--since", since(built), "--report", str(page)))
    assert "alert" in result.stdout and "parity defect" in result.stdout.lower()
    assert customer(DEFECT) in result.stdout
    for title in ("traffic", "drift of v1", "agreement on score", "quality"):
        assert title in result.stdout, title
    assert f"report: {page}" in "\n".join(errors(result))
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and html.count("<svg") == 4


def test_bad_since_and_an_unknown_model_are_one_line_errors(built: Built) -> None:
    bad = run(built.home, "monitor", MODEL, "--since", "yesterday")
    assert bad.returncode == 1
    [line] = errors(bad)
    assert line.startswith("error: since is a duration back from now") and "Traceback" not in bad.stderr

    unknown = run(built.home, "monitor", "chrun")
    assert unknown.returncode == 1
    [line] = errors(unknown)
    assert line.startswith("error: no model named 'chrun'") and "did you mean 'churn'" in line

    usage = run(built.home, "monitor", MODEL, "--version", "0")
    assert usage.returncode == 2  # click's own usage error


def test_help_shows_an_example_and_imports_no_model_stack(built: Built) -> None:
    result = ok(run(built.home, "monitor", "--help"))
    assert "Example" in result.stdout and "foretell monitor churn --since 7d --report monitor.html" in result.stdout
    imported = {
        line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    }
    heavy = ("numpy", "pandas", "pyarrow", "duckdb", "foretell.monitor", "foretell.registry", "foretell.profiles")
    assert sorted(n for n in imported if any(n == h or n.startswith(h + ".") for h in heavy)) == []
