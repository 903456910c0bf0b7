"""The dashboard in the system's Chromium (Playwright): real figures, no console error, nothing fetched from
elsewhere, an alias moved by its button, keys refused, a running job's progress moving; a screenshot of each
page in $FORETELL_TEST_ARTIFACTS (else the test's temporary folder)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from browserkit import chromium
from uikit import FEATURES, cli, cli_json, rows, server, slow_job, two_versions

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency (pip install playwright)")

PAGES = {"models": "", "jobs": "jobs", "live": "live", "store": "store", "rollout": "rollout", "monitor": "monitor"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium()  # skips (or fails with FORETELL_REQUIRE_CHROMIUM=1) without one
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


class Watched:
    """A page whose console errors, uncaught errors and requests leaving 127.0.0.1 are collected."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.elsewhere: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", self._request)
        self.page.on("dialog", lambda d: d.accept())  # the buttons' confirmations

    def _request(self, request: Any) -> None:
        if urlsplit(request.url).hostname != "127.0.0.1" and not request.url.startswith("data:"):
            self.elsewhere.append(request.url)

    def open(self, url: str) -> Any:
        self.page.goto(url)
        self.page.wait_for_selector("body[data-loaded=true]", timeout=10_000)
        return self.page


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    found = Watched(browser)
    yield found
    found.context.close()


def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("FORETELL_TEST_ARTIFACTS") or tmp_path) / "ui-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def infer(url: str, model: str, n: int) -> None:
    body = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": rows(2).ravel().tolist()}]}
    for _ in range(n):
        assert httpx.post(f"{url}/v2/models/{model}/infer", json=body).status_code == 200
    assert len(FEATURES) == 4


def test_every_page_draws_the_real_figures(url: str, home: Path, watched: Watched, tmp_path: Path) -> None:
    infer(url, "other", 30)  # the Live page has something to draw
    shots = artifacts(tmp_path)
    text = {}
    for name, path in PAGES.items():
        page = watched.open(f"{url}/ui/{path}")
        if name == "live":
            page.wait_for_selector("[data-testid=live-other] polyline", timeout=10_000)
        if name == "monitor":  # a first reading still being computed is shown as such, then drawn once done
            page.wait_for_selector("[data-testid=monitor-verdict-churn]", timeout=30_000)
        text[name] = page.inner_text("main")
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        assert (shots / f"{name}.png").stat().st_size > 1000

    churn = cli_json(home, "models", "show", "churn/1")
    assert churn["sha256"][:12] in text["models"]
    assert "@production → v1" in text["models"]
    assert f"parity on {churn['compiled']['parity']['rows']:,} rows" in text["models"]
    job = cli_json(home, "batch", "list")[-1]
    assert job["id"] in text["jobs"] and f"{job['rows']:,}" in text["jobs"]
    assert "foretell models list --json" in text["jobs"]  # the schedule
    assert re.search(r"since start: [\d,]+ requests", text["live"])
    store = cli_json(home, "ledger", "stats")["models"]["churn"]
    assert f"{store['rows']:,}" in text["store"]
    status = cli_json(home, "rollout", "status", "clf")
    assert f"verdict: {status['verdict']['action']}" in text["rollout"]
    report = cli_json(home, "monitor", "churn")
    assert f"{report['verdict']['status']}: {' '.join(report['verdict']['reasons'])}" in text["monitor"]
    first = report["drift"]["features"][0]["name"]
    assert first in text["monitor"]
    assert watched.errors == []
    assert watched.elsewhere == []


def test_the_alias_button_changes_what_the_server_serves(url: str, home: Path, watched: Watched) -> None:
    page = watched.open(f"{url}/ui/")
    page.click("[data-testid=move-other-production-2]")  # the confirmation is accepted (Watched)
    page.wait_for_selector("#status:has-text('done: move other@production to version 2')")
    deadline = time.monotonic() + 10
    while httpx.get(f"{url}/v2/models/other").json()["versions"] != ["2"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    page.wait_for_selector("[data-testid=alias-other-production]:has-text('v2')")
    assert cli_json(home, "models", "show", "other@production")["version"] == 2
    page.click("[data-testid=move-other-production-1]")
    page.wait_for_selector("[data-testid=alias-other-production]:has-text('v1')")
    assert watched.errors == []


def test_the_abort_button_ends_the_rollout(url: str, home: Path, watched: Watched) -> None:
    cli(home, "rollout", "abort", "clf")  # whatever the tests before left active (run alone: the home's own rollout)
    challenger = 1 if cli_json(home, "models", "show", "clf@production")["version"] == 2 else 2
    started = cli(home, "rollout", "start", "clf", "--challenger", str(challenger), "--shadow", "10")
    assert started.returncode == 0, started.stderr
    page = watched.open(f"{url}/ui/rollout")
    page.click("[data-testid=abort-clf]")  # confirmed (Watched)
    page.wait_for_selector("#status:has-text('done: abort the rollout of clf')")
    status = cli_json(home, "rollout", "status", "clf")["rollout"]
    assert (status["state"], status["challenger"]) == ("aborted", challenger)
    assert status["reason"].endswith("from the dashboard")
    page.wait_for_selector("h2:has-text('aborted')")
    assert page.query_selector("[data-testid=abort-clf]") is None  # an ended rollout has no buttons
    assert watched.errors == []


def test_a_running_jobs_progress_moves_on_the_jobs_page(url: str, home: Path, scratch: Path, watched: Watched) -> None:
    page = watched.open(f"{url}/ui/jobs")
    job = subprocess.Popen(
        [sys.executable, "-m", "foretell", *slow_job(home, scratch, "slow-browser")],
        env={**os.environ, "FORETELL_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        seen: list[int] = []
        deadline = time.monotonic() + 30
        while len(set(seen)) < 2 and time.monotonic() < deadline and job.poll() is None:
            shown = page.query_selector("[data-testid=progress]")
            if shown is not None:
                seen.append(int(shown.inner_text().split(" rows")[0].replace(",", "")))
            time.sleep(0.25)
        assert len(set(seen)) >= 2, seen  # redrawn by the page's own polling, with a larger count
        assert seen == sorted(seen)
    finally:
        assert job.wait(timeout=60) == 0
    assert watched.errors == []


def test_without_an_admin_key_the_buttons_refuse(browser: Any, tmp_path: Path) -> None:
    home = two_versions(tmp_path / "home", tmp_path, production=1)
    predict = cli_json(home, "keys", "create", "scorer", "--scope", "predict")["token"]
    watched = Watched(browser)
    try:
        with server(home) as url:
            page = watched.page
            page.goto(f"{url}/ui/")
            page.wait_for_selector("#key-form:not([hidden])")  # asked for a key: reading needs one
            page.fill("#key-input", predict)
            page.click("#key-form button")
            page.wait_for_selector("body[data-loaded=true]")
            page.click("[data-testid=move-m-production-2]")
            page.wait_for_selector("#status:has-text('refused: 403')")
            assert "lacks the 'admin' scope" in page.inner_text("#status")
            assert httpx.get(f"{url}/v2/models/m", headers={"X-API-Key": predict}).json()["versions"] == ["1"]
            assert watched.elsewhere == []
    finally:
        watched.context.close()
    assert cli_json(home, "models", "show", "m@production")["version"] == 1
