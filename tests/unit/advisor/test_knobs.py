"""`--write-config`: the recommended knobs as a serve config the real loader reads, and a schedule the book accepts."""

from __future__ import annotations

import shlex
from datetime import timedelta
from pathlib import Path

import pytest
from browserkit import rendered
from recorded import DAY0, Recording, Row, seconds
from test_cost import M

from foretell import api
from foretell.advisor.knobs import recommended_knobs
from foretell.serving.config import load_serve_config


def _hybrid_traffic(tmp_path: Path) -> Recording:
    rec = Recording(tmp_path)
    population = [f"C-{i}" for i in range(3_000)]
    rec.job("night", seconds(0, 3 * 3_600 + 15 * 60), population)
    rows = [Row(seconds(0, 4 * 3_600 + i * 0.5), "precomputed", population[i % 3_000]) for i in range(60_000)]
    rows += [Row(seconds(0, 4 * 3_600 + i * 7.0), "live-fallback", population[i % 3_000]) for i in range(600)]
    rec.segment(rows)
    return rec


def test_the_written_config_loads_with_the_server_s_own_loader_and_holds_the_recommended_knobs(tmp_path: Path) -> None:
    rec = _hybrid_traffic(tmp_path)
    advice = api.advise_from_ledger(
        "churn@production", since=DAY0, until=DAY0 + timedelta(days=1), ledger=rec.ledger, measurements=M
    )
    assert advice.advice.recommendation == "hybrid"
    path = tmp_path / "serve.toml"
    path.write_text(api.advice_config(advice, "churn@production"), encoding="utf-8")

    config = load_serve_config(path)
    knobs = recommended_knobs(advice.advice)
    policy = config.policy_for("churn")
    assert (policy.max_batch_size, policy.max_delay_ms, policy.max_queue) == (
        knobs["max_batch_size"],
        knobs["max_delay_ms"],
        knobs["max_queue"],
    )
    assert config.model_max_age == {"churn": pytest.approx(26 * 3_600)}  # a day's need plus a twelfth of a day
    assert policy.max_queue == round(M.live_rps * 0.2)  # what one worker answers within the 200 ms objective
    assert policy.max_batch_size >= 8 and policy.max_delay_ms == 10.0

    [command] = [line for line in path.read_text().splitlines() if "foretell schedule add" in line]
    argv = shlex.split(command.split("foretell schedule add ", 1)[1])
    name, cron, rest = argv[0], argv[2], argv[4:]
    assert argv[1] == "--cron" and argv[3] == "--"
    assert cron == "15 3 * * *"  # when the latest job ran
    assert rest[:3] == ["batch", "run", "churn@production"] and "--to-store" in rest
    schedule = api.schedule_book(home=tmp_path / "home").add(name, cron, rest)  # the book's own checks accept it
    assert schedule.cron == cron


def test_real_time_advice_writes_batching_only() -> None:
    from foretell.advisor import Workload, advise

    w = Workload(
        population=1_000_000, active_per_day=100, requests_per_day=100_000, peak_rps=50, p99_ms=20, freshness_s=0
    )
    advice = advise(w, M)
    assert advice.recommendation == "real-time"
    knobs = recommended_knobs(advice)
    assert "max_age" not in knobs
    assert knobs["max_delay_ms"] == 4.0  # a quarter of the 16 ms the objective leaves after a lone call's p99
    assert knobs["max_queue"] == 116


def test_the_serve_config_in_use_gives_the_freshness_need_and_options_override_the_ledger(tmp_path: Path) -> None:
    rec = _hybrid_traffic(tmp_path)
    config = tmp_path / "serve.toml"
    config.write_text('max_age = "26h"\n[hybrid.churn]\nmax_age = "2h"\n')
    window = {"since": DAY0, "until": DAY0 + timedelta(days=1), "ledger": rec.ledger, "measurements": M}
    advice = api.advise_from_ledger("churn", config=config, **window)  # type: ignore[arg-type]
    assert advice.observed.workload.freshness_s == 7_200
    assert advice.observed.provenance["freshness_s"] == "inferred: the serve config's max_age for the model"

    workload = tmp_path / "workload.toml"
    workload.write_text("population = 5000\np99_ms = 80\n")
    tuned = api.advise_from_ledger("churn", file=workload, settings={"requests_per_day": 1_000.0}, **window)  # type: ignore[arg-type]
    w = tuned.observed.workload
    assert (w.population, w.p99_ms, w.requests_per_day) == (5_000, 80, 1_000.0)
    assert tuned.observed.overridden == ["population", "requests_per_day"]
    assert "Options replaced these measured figures: population, requests_per_day." in tuned.comparison_lines()


def test_the_report_holds_the_ledger_s_figures_and_the_current_set_up_in_chromium(tmp_path: Path) -> None:
    rec = _hybrid_traffic(tmp_path)
    advice = api.advise_from_ledger(
        "churn", since=DAY0, until=DAY0 + timedelta(days=1), ledger=rec.ledger, measurements=M, settings={"p99_ms": 90}
    )
    page = api.ledger_advice_report(advice)
    assert '<table id="ledger">' in page and '<ul id="current">' in page and "<script" not in page
    assert "60,600 requests (live, precomputed, live-fallback)" in page and "<td>option</td>" in page
    path = tmp_path / "advice.html"
    path.write_text(page, encoding="utf-8")
    dom, console = rendered(path, tmp_path)
    assert console == []
    assert "Measured from the ledger" in dom and "The current set-up, hybrid" in dom and dom.count("<svg") == 3
