"""The dashboard's JSON documents and actions against a real `foretell serve` on a real socket.

Every figure is checked against what the CLI's `--json` prints on the same home, run as a process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
from uikit import cli, cli_json, free_port, ok, rows, server, slow_job, two_versions

PAGES = ("models", "jobs", "live", "store", "rollout", "monitor")


def document(url: str, page: str, **kwargs: Any) -> Any:
    answer = httpx.get(f"{url}/ui/api/{page}", timeout=30, **kwargs)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize("page", ["", "jobs", "live", "store", "rollout", "monitor"])
def test_every_page_is_html_with_its_name_and_the_scripts_it_loads(url: str, page: str) -> None:
    answer = httpx.get(f"{url}/ui/{page}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert f'data-page="{page or "models"}"' in answer.text
    for asset in ("dashboard.js", "dashboard.css"):
        assert f"/ui/static/{asset}" in answer.text
        assert httpx.get(f"{url}/ui/static/{asset}").status_code == 200
    assert "http://" not in answer.text.replace('"http://www.w3.org', "")  # nothing fetched from elsewhere


def test_the_models_document_is_models_list_and_show(url: str, home: Path) -> None:
    shown = document(url, "models")["models"]
    listed = cli_json(home, "models", "list")
    assert [{k: v for k, v in m.items() if k != "versions"} for m in shown] == listed
    churn = next(m for m in shown if m["name"] == "churn")
    assert churn["versions"] == [cli_json(home, "models", "show", "churn/1")]
    assert churn["versions"][0]["compiled"]["status"] == "passed"  # the predictor and its proof's figures
    assert churn["versions"][0]["profile"]["rows"] > 0  # the reference profile


def test_the_jobs_document_is_batch_list_and_schedule_list(url: str, home: Path) -> None:
    shown = document(url, "jobs")
    jobs = cli_json(home, "batch", "list")
    added = ("progress", "rejects_sample")
    assert [{k: v for k, v in j.items() if k not in added} for j in shown["jobs"]] == jobs
    assert shown["jobs"][-1]["rows"] == 2000 and shown["jobs"][-1]["status"] == "succeeded"
    scored = next(j for j in shown["jobs"] if j["model_uri"] == "other/1")
    assert scored["rejected"] == 1
    [reject] = scored["rejects_sample"]
    assert reject["id"] == "R-7" and '"a":null' in reject["values"].replace(" ", "") and "a" in reject["reason"]
    assert shown["schedules"] == cli_json(home, "schedule", "list")


def test_the_store_document_is_the_stores_ledgers_and_entities_figures(url: str, home: Path) -> None:
    shown = document(url, "store")
    churn = next(g for g in shown["generations"] if g["model"] == "churn")
    assert (churn["generation"], churn["rows"]) == (1, 2000)
    assert churn["published_at"]
    assert shown["entities"] == cli_json(home, "entities", "list")
    assert shown["ledger"]["models"] == cli_json(home, "ledger", "stats")["models"]


def test_the_rollout_document_is_rollout_status(url: str, home: Path) -> None:
    shown = document(url, "rollout")["rollouts"]
    assert set(shown) == {"clf"}
    status = cli_json(home, "rollout", "status", "clf")
    for part in ("rollout", "verdict", "guards", "quality"):
        assert shown["clf"][part] == status[part], part


def monitor_reports(url: str, **kwargs: Any) -> dict[str, Any]:
    """The Monitor document once no model's first reading is pending any more."""
    deadline = time.monotonic() + 60
    while (shown := document(url, "monitor", **kwargs))["pending"]:
        assert all(shown["monitors"][m] == {"model": m, "pending": True, "started_at": ANY} for m in shown["pending"])
        assert time.monotonic() < deadline, shown
        time.sleep(0.2)
    reports: dict[str, Any] = shown["monitors"]
    return reports


def test_the_monitor_document_is_monitor(url: str, home: Path) -> None:
    shown = monitor_reports(url)["churn"]
    report = cli_json(home, "monitor", "churn")
    assert shown["version"] == report["version"]
    assert shown["verdict"] == report["verdict"]
    assert shown["drift"]["features"] == report["drift"]["features"]
    assert shown["traffic"]["by_source"] == report["traffic"]["by_source"]


def test_live_counts_the_servers_own_requests(url: str) -> None:
    body = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": rows(2).ravel().tolist()}]}
    for _ in range(20):
        assert httpx.post(f"{url}/v2/models/other/infer", json=body).status_code == 200
    deadline = time.monotonic() + 10
    while True:
        live = document(url, "live")
        other = live["models"].get("other")
        if other and other["totals"]["requests"] >= 20 and any(p["requests_per_second"] > 0 for p in other["points"]):
            break
        assert time.monotonic() < deadline, live
        time.sleep(0.3)
    busy = [p for p in other["points"] if p["requests_per_second"] > 0]
    assert all(p["p50_ms"] is not None and p["p99_ms"] >= p["p50_ms"] for p in busy)
    assert any(p["mean_batch_size"] for p in busy)
    assert live["running"] and live["interval_seconds"] == 1.0


def test_moving_an_alias_changes_what_the_server_serves(url: str, home: Path) -> None:
    assert httpx.get(f"{url}/v2/models/other").json()["versions"] == ["1"]
    moved = httpx.post(f"{url}/ui/api/models/other/alias", json={"alias": "production", "version": 2})
    assert moved.status_code == 200, moved.text
    assert moved.json() == {"name": "other", "alias": "production", "version": 2}
    assert cli_json(home, "models", "show", "other@production")["version"] == 2
    deadline = time.monotonic() + 10
    while httpx.get(f"{url}/v2/models/other").json()["versions"] != ["2"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    back = httpx.post(f"{url}/ui/api/models/other/alias", json={"alias": "production", "version": 1})
    assert back.status_code == 200


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"alias": "production", "version": "2"}, "version must be an integer of 1 or more; got '2'"),
        ({"alias": "", "version": 2}, "alias must be a non-empty string; got ''"),
        ([1], "body must be a JSON object with alias and version; got list"),
    ],
)
def test_a_bad_alias_move_is_a_400_naming_the_field(url: str, body: object, said: str) -> None:
    answer = httpx.post(f"{url}/ui/api/models/other/alias", json=body)
    assert (answer.status_code, answer.json()) == (400, {"error": said})


def test_an_unknown_model_or_page_is_a_json_404(url: str) -> None:
    moved = httpx.post(f"{url}/ui/api/models/nope/alias", json={"alias": "production", "version": 1})
    assert moved.status_code == 404 and "nope" in moved.json()["error"]
    page = httpx.get(f"{url}/ui/api/nope")
    assert page.status_code == 404
    assert page.json() == {"error": "page must be one of models, jobs, live, store, rollout, monitor; got 'nope'"}


def test_a_running_jobs_progress_moves(url: str, home: Path, scratch: Path) -> None:
    job = subprocess.Popen(
        [sys.executable, "-m", "foretell", *slow_job(home, scratch, "slow-api")],
        env={**os.environ, "FORETELL_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        seen: list[int] = []
        deadline = time.monotonic() + 30
        while len(set(seen)) < 3 and time.monotonic() < deadline and job.poll() is None:
            running = [j for j in document(url, "jobs")["jobs"] if j["status"] == "running"]
            if running:
                seen.append(running[0]["progress"]["rows"])
            time.sleep(0.2)
        assert len(set(seen)) >= 3, seen  # three different counts while it ran
        assert seen == sorted(seen)
    finally:
        assert job.wait(timeout=60) == 0
    assert document(url, "jobs")["jobs"][0]["rows"] == 4000


def test_keys_are_enforced(tmp_path: Path, scratch: Path) -> None:
    """No key: 401 on every document and action; a `predict` key reads but may not act (403); `admin` acts."""
    home = two_versions(tmp_path / "home", tmp_path, production=2)
    admin = cli_json(home, "keys", "create", "ops", "--scope", "admin")["token"]
    predict = cli_json(home, "keys", "create", "scorer", "--scope", "predict")["token"]
    with server(home) as url:
        for page in PAGES:
            refused = httpx.get(f"{url}/ui/api/{page}")
            assert refused.status_code == 401 and refused.json() == {"error": "missing or wrong API key"}
            assert document(url, page, headers={"Authorization": f"Bearer {predict}"})
        assert httpx.get(f"{url}/ui/live").status_code == 200  # the pages hold no data: public
        move = f"{url}/ui/api/models/m/alias"
        body = {"alias": "production", "version": 1}
        assert httpx.post(move, json=body).status_code == 401
        forbidden = httpx.post(move, json=body, headers={"Authorization": f"Bearer {predict}"})
        assert forbidden.status_code == 403
        assert forbidden.json() == {
            "error": "API key 'scorer' lacks the 'admin' scope this route needs (it has: predict)"
        }
        assert httpx.post(f"{url}/ui/api/rollout/m/abort", headers={"X-API-Key": predict}).status_code == 403
        assert httpx.post(move, json=body, headers={"Authorization": f"Bearer {admin}"}).status_code == 200
    assert cli_json(home, "models", "show", "m@production")["version"] == 1


def test_foretell_ui_serves_the_pages_without_a_server(home: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "foretell", "ui", "--port", str(port)],
        env={**os.environ, "FORETELL_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/ui/").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        assert httpx.get(base).headers.get("location") == "/ui/"
        live = document(base, "live")
        assert live["running"] is False and "no server runs in this process" in live["note"]
        assert [m["name"] for m in document(base, "models")["models"]] == [
            m["name"] for m in cli_json(home, "models", "list")
        ]
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_foretell_ui_help_has_an_example(home: Path) -> None:
    assert "foretell ui --port 9000" in ok(home, "ui", "--help")
    assert cli(home, "ui", "--port", "0").returncode != 0


def test_promoting_a_rollout_moves_the_alias_and_the_server_follows(url: str, home: Path) -> None:
    """Last in this module: it ends the home's rollout (the browser tests read its status as it then is)."""
    promoted = httpx.post(f"{url}/ui/api/rollout/clf/promote")
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["state"] == "promoted"
    assert promoted.json()["reason"].startswith("promoted by ") and promoted.json()["reason"].endswith("dashboard")
    status = cli_json(home, "rollout", "status", "clf")
    assert status["rollout"]["state"] == "promoted"
    assert document(url, "rollout")["rollouts"]["clf"]["rollout"] == status["rollout"]  # not a cached status
    assert cli_json(home, "models", "show", "clf@production")["version"] == 2
    deadline = time.monotonic() + 10
    while httpx.get(f"{url}/v2/models/clf").json()["versions"] != ["2"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    again = httpx.post(f"{url}/ui/api/rollout/clf/abort")
    assert again.status_code == 409
    assert again.json()["error"].startswith("model 'clf' has no active rollout (the last one, ")


def test_a_new_server_shows_the_last_monitor_reading_at_once_then_a_fresh_one(url: str, home: Path) -> None:
    """The monitor takes seconds over a big ledger: a new start shows the last run's figures, never "pending"."""
    first = monitor_reports(url)["churn"]
    assert first["generated_at"] and first["verdict"]
    assert (home / "dashboard" / "monitor-churn.json").is_file(), "the reading is kept in the home"
    with server(home) as again:
        at_start = document(again, "monitor")
        assert at_start["pending"] == [] and at_start["monitors"]["churn"]["generated_at"]
        deadline = time.monotonic() + 60
        while document(again, "monitor")["monitors"]["churn"]["generated_at"] <= first["generated_at"]:
            assert time.monotonic() < deadline  # the kept reading is replaced by this run's own
            time.sleep(0.2)
