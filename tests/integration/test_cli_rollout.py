"""`foretell rollout ...` as a user runs it: one-line errors for bad arguments; promote and abort move the alias.

Abort keeps the alias where it was. The registry is real (a home folder with two
registered versions), the commands run in their own processes, and quality per arm is
read from a real ledger with real labels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

from foretell import api

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "ledger"))  # ledger files built by the shared kit
from ledgerkit import prediction, publish_segment

from foretell.ledger.segments import LedgerLocation

MODEL = "clf"


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    inherited = {name: value for name, value in os.environ.items() if name != "FORETELL_LEDGER"}
    env = {**inherited, "FORETELL_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "foretell", *args], capture_output=True, text=True, env=env,
                          timeout=180)  # fmt: skip


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rollout-models")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2))
    y = (x[:, 0] + 0.3 * rng.normal(size=300) > 0).astype(int)
    joblib.dump(LogisticRegression().fit(x, y), folder / "v1.joblib")
    joblib.dump(LogisticRegression(C=0.05).fit(x, y), folder / "v2.joblib")
    return folder


@pytest.fixture
def home(tmp_path: Path, files: Path) -> Path:
    """`clf` v1 (production) and v2 (staging), registered for real."""
    home = tmp_path / "home"
    api.register(MODEL, files / "v1.joblib", aliases=["production"], compile=False, home=home)
    api.register(MODEL, files / "v2.joblib", aliases=["staging"], compile=False, home=home)
    return home


def production(home: Path) -> int:
    return api.show(f"{MODEL}@production", home=home).version


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--challenger", "9", "--canary", "10"), "error: model 'clf' has no version 9; its versions: 1-2"),
        (("--challenger", "2", "--canary", "100"), "error: --canary PCT must be a percentage with 0 < PCT < 100"),
        (("--challenger", "2", "--canary", "0"), "error: --canary PCT must be a percentage"),
        (("--challenger", "2", "--shadow", "150"), "error: --shadow PCT must be a percentage with 0 < PCT ≤ 100"),
        (("--challenger", "2", "--shadow", "--guard", "nope=1"), "error: there is no guard 'nope'; the guards are"),
        (("--challenger", "2", "--shadow", "--guard", "min_requests=0"), "error: guard min_requests must be a whole"),
        (("--challenger", "2", "--shadow", "--canary", "5"), "error: give exactly one of --shadow [PCT] or --canary"),
        (("--challenger", "2"), "error: give exactly one of --shadow [PCT] or --canary PCT"),
        (("--challenger", "1", "--shadow"), "error: the challenger is version 1, which clf@production already serves"),
        (("--challenger", "2", "--shadow", "--sticky", "user"), "error: --sticky is key or request, got 'user'"),
        (("--challenger", "other/1", "--shadow"), "error: no model named 'other'"),
    ],
)
def test_bad_arguments_are_one_line_errors(home: Path, args: tuple[str, ...], expected: str) -> None:
    line = one_line_error(run(home, "rollout", "start", MODEL, *args))
    assert line.startswith(expected), line
    assert api.get_registry(home).rollouts.latest(MODEL) is None


def test_an_unknown_model_and_a_model_without_rollouts(home: Path) -> None:
    assert one_line_error(run(home, "rollout", "status", "clff")).startswith("error: no model named 'clff'")
    assert "has had no rollout" in one_line_error(run(home, "rollout", "status", MODEL))
    assert one_line_error(run(home, "rollout", "promote", MODEL)).startswith(
        "error: model 'clf' has no active rollout (it never had one)"
    )


def test_shadow_then_promote_moves_the_alias(home: Path) -> None:
    started = ok(run(home, "rollout", "start", MODEL, "--challenger", "staging", "--shadow"))
    assert "started shadow rollout" in started.stdout and "v2 also scores 100% of requests" in started.stdout
    assert "within about a second" in started.stdout
    second = run(home, "rollout", "start", MODEL, "--challenger", "2", "--canary", "10")
    assert "already has an active rollout" in one_line_error(second)

    shown = json.loads(ok(run(home, "rollout", "status", MODEL, "--json")).stdout)
    assert shown["rollout"]["state"] == "active" and shown["rollout"]["percent"] == 100.0
    holds = {g["name"]: g["holds"] for g in shown["guards"]}
    assert holds == {"max_error_rate": None, "max_p99_ratio": None, "max_score_diff_p99": None,
                     "max_label_flip_rate": None, "min_requests": False}  # fmt: skip
    assert shown["verdict"]["action"] == "wait" and shown["workers"] == []
    assert production(home) == 1

    promoted = ok(run(home, "rollout", "promote", MODEL))
    assert "clf@production now points at v2" in promoted.stdout and "promoted by " in promoted.stdout
    assert production(home) == 2
    after = json.loads(ok(run(home, "rollout", "status", MODEL, "--json")).stdout)
    assert after["rollout"]["state"] == "promoted" and after["rollout"]["reason"].startswith("promoted by ")
    assert [e["action"] for e in after["events"]] == ["started", "promoted"]
    assert "no active rollout" in one_line_error(run(home, "rollout", "abort", MODEL))


def test_canary_then_abort_keeps_the_alias(home: Path) -> None:
    started = ok(run(home, "rollout", "start", MODEL, "--challenger", "models:/clf/2", "--canary", "10", "--sticky",
                     "request", "--guard", "max_label_flip_rate=0.05", "--auto", "--json"))  # fmt: skip
    plan = json.loads(started.stdout)
    assert (plan["mode"], plan["percent"], plan["sticky"], plan["auto"]) == ("canary", 10.0, "request", True)
    assert (plan["champion"], plan["challenger"], plan["guards"]["max_label_flip_rate"]) == (1, 2, 0.05)
    aborted = json.loads(ok(run(home, "rollout", "abort", MODEL, "--json")).stdout)
    assert aborted["state"] == "aborted" and aborted["reason"].startswith("aborted by ")
    assert production(home) == 1
    table = ok(run(home, "rollout", "status", MODEL)).stdout
    assert "aborted at" in table and "quality: no labels yet" in table


def test_status_shows_both_arms_the_guards_and_the_workers(home: Path) -> None:
    ok(run(home, "rollout", "start", MODEL, "--challenger", "2", "--shadow", "50", "--guard", "min_requests=100"))
    registry = api.get_registry(home)
    rollout = registry.rollouts.active(MODEL)
    assert rollout is not None
    from foretell.rollout import Comparison, RolloutStats

    for worker, n in (("host:1", 60), ("host:2", 40)):
        stats = RolloutStats()
        stats.champion.requests = stats.challenger.requests = n
        stats.challenger.errors = 0
        stats.champion.latency.add_many([0.002] * n)
        stats.challenger.latency.add_many([0.003] * n)
        stats.add_comparison(Comparison(np.full(n, 0.01), np.zeros(n, dtype=bool)))
        registry.rollouts.report(rollout.id, worker, stats)

    shown = json.loads(ok(run(home, "rollout", "status", MODEL, "--json")).stdout)
    assert set(shown) == {"rollout", "figures", "guards", "verdict", "workers", "events", "quality"}
    figures = shown["figures"]
    assert (figures["champion"]["requests"], figures["challenger"]["requests"], figures["compared"]) == (100, 100, 100)
    assert figures["p99_ratio"] == pytest.approx(1.5, rel=0.03)
    assert figures["score_diff"]["p99"] == pytest.approx(0.01, rel=0.02) and figures["label_flip_rate"] == 0.0
    guards = {g["name"]: g for g in shown["guards"]}
    assert guards["min_requests"] == {"name": "min_requests", "limit": 100, "value": 100, "holds": True}
    assert guards["max_p99_ratio"]["holds"] is True and guards["max_score_diff_p99"]["holds"] is None
    assert shown["verdict"] == {
        "action": "wait",
        "reasons": ["every guard holds; promote with `foretell rollout promote`"],
    }
    assert [w["worker"] for w in shown["workers"]] == ["host:1", "host:2"]
    assert shown["quality"]["status"] == "no labels yet"

    table = ok(run(home, "rollout", "status", MODEL)).stdout
    for text in ("arms", "champion", "challenger", "guards", "verdict now: wait", "host:1", "started: shadow"):
        assert text in table, text


def test_quality_per_arm_once_labels_arrived(home: Path, tmp_path: Path) -> None:
    ok(run(home, "rollout", "start", MODEL, "--challenger", "2", "--shadow"))
    time.sleep(0.01)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, size=200)
    rows = []
    for version, source, noise in ((1, "live", 0.2), (2, "shadow", 0.45)):
        scores = np.clip(truth + rng.normal(scale=noise, size=truth.size), 0.01, 0.99)
        rows += [
            prediction(f"{source}-{i}", now, key=f"K-{i}", source=source, version=version, model=MODEL,
                       outputs={"score": float(s), "label": int(s > 0.5)})
            for i, s in enumerate(scores)
        ]  # fmt: skip
    publish_segment(LedgerLocation(home / "ledger"), rows)
    labels = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"key": [f"K-{i}" for i in range(truth.size)], "label": truth.tolist()}), labels)
    api.load_labels(MODEL, labels, key="key", label="label", home=home)

    quality = json.loads(ok(run(home, "rollout", "status", MODEL, "--json")).stdout)["quality"]
    assert quality["status"] == "measured" and quality["labelled"] == 400
    [champion] = quality["arms"]["champion"]["cells"]
    [challenger] = quality["arms"]["challenger"]["cells"]
    assert (champion["version"], champion["source"], champion["labelled"]) == (1, "live", 200)
    assert (challenger["version"], challenger["source"], challenger["labelled"]) == (2, "shadow", 200)
    assert champion["auc"] > challenger["auc"] > 0.5
    table = ok(run(home, "rollout", "status", MODEL)).stdout
    assert "quality since the rollout began" in table and "shadow" in table
