"""deploy/grafana/foretell.json against a real server's /metrics: a renamed metric or label breaks this test.

The demo (churn and movies, their entity tables, a nightly batch published to the store, a
second churn version in a shadow rollout) is served with the ledger on and a Redis stream
of events, and driven with a little of every kind of traffic (infer, an expired deadline,
lookups that hit, fall back and miss, events over HTTP and the stream, a dead letter,
labels). Then every PromQL expression of the dashboard must name only series the scrape
shows, with only the labels those series carry (plus `instance` and `job`, which
Prometheus adds, and `le` on a histogram's buckets).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from servekit import cli, server

import foretell
from foretell.registry import open_registry

sys.path.insert(0, str(Path(__file__).parents[2] / "contract"))  # the throwaway redis-server of the store tests
import redis_server

DASHBOARD = Path(__file__).parents[3] / "deploy" / "grafana" / "foretell.json"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
#: Labels Prometheus attaches to every scraped series (target labels), which /metrics never shows.
SCRAPE_LABELS = {"instance", "job"}
#: Words of PromQL an expression may contain besides metric names and labels.
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "topk", "bottomk", "by", "without", "rate", "irate", "increase",
    "histogram_quantile", "label_values", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
}  # fmt: skip


# -- the server ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server.shared() as url:
        yield url


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo, its entity tables and a published batch generation; churn/2 shadows churn@production."""
    home = tmp_path_factory.mktemp("grafana") / "home"
    demo = home / "demo"
    steps = [
        ("demo", "init", "--customers", "1000", "--users", "100", "--movies", "100"),
        ("entities", "load", "customers", str(demo / "customers.parquet"), "--key", "customer_id", "--model", "churn"),
        ("entities", "load", "users", str(demo / "ratings.parquet"), "--key", "user_id", "--model", "movies",
         "--interactions", "ratings", "--item", "movie_id", "--value", "rating"),
        ("batch", "run", "churn@production", "--input", str(demo / "customers.parquet"), "--output",
         str(home.parent / "scores"), "--to-store", "--id-column", "customer_id"),
    ]  # fmt: skip
    for args in steps:
        done = cli(home, *args)
        assert done.returncode == 0, (args, done.stderr)
    registry = open_registry(home)
    info = registry.get("churn@production")
    with tempfile.TemporaryDirectory() as copy:  # a second version: the same artifact, registered again
        artifact = Path(copy) / registry.artifact_path(info).name
        (shutil.copytree if registry.artifact_path(info).is_dir() else shutil.copy)(
            registry.artifact_path(info), artifact
        )
        foretell.register("churn", artifact, signature=info.signature, flavor=info.flavor,
                          flavor_options=dict(info.flavor_options), compile=False, home=home)  # fmt: skip
    # The uncompiled challenger is many times slower than the compiled champion: a loose p99 guard keeps the
    # rollout (and its metrics) alive however long the test takes.
    done = cli(
        home, "rollout", "start", "churn", "--challenger", "2", "--shadow", "100", "--guard", "max_p99_ratio=1000"
    )
    assert done.returncode == 0, done.stderr
    (home / "serve.toml").write_text("[ledger]\nflush_seconds = 0.2\n")
    return home


def infer_bodies(home: Path) -> list[dict[str, Any]]:
    """OIP bodies, one tensor per feature, for the demo customers with no missing value (JSON has no NaN)."""
    signature = open_registry(home).get("churn@production").signature
    bodies = []
    for row in pq.read_table(home / "demo" / "customers.parquet").slice(0, 200).to_pylist():
        values = [row[f.name] for f in signature.inputs]
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
            continue
        bodies.append({"inputs": [
            {"name": f.name, "shape": [1], "datatype": "BYTES" if f.dtype == "category" else "FP64", "data": [v]}
            for f, v in zip(signature.inputs, values, strict=True)
        ]})  # fmt: skip
    return bodies


def series(text: str) -> dict[str, set[str]]:
    """Each sample name of a scrape (`foretell_requests_total`, `..._bucket`) and the labels it carries."""
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


NEEDED = (
    "foretell_lookups_total", "foretell_rejected_total", "foretell_labels_joined_total", "foretell_feature_drift_psi",
    "foretell_rollout_compared_rows_total", "foretell_rollout_score_diff", "foretell_events_consumed_total",
    "foretell_prediction_score_count",
)  # fmt: skip


@pytest.fixture(scope="module")
def scraped(demo_home: Path, redis_url: str) -> dict[str, set[str]]:
    """The series of a served demo after a little of every kind of traffic."""
    stream = f"grafana-{uuid.uuid4().hex[:10]}"
    args = ("churn@production", "movies@production", "--config", str(demo_home / "serve.toml"))
    with (
        server(demo_home, *args, "--events-from", f"{redis_url}?stream={stream}", timeout=120) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        bodies = infer_bodies(demo_home)
        for body in bodies:
            assert client.post("/v2/models/churn/infer", json=body).status_code == 200
        late = client.post("/v2/models/churn/infer", json=bodies[0], headers={"X-Request-Timeout": "0.000000001"})
        assert late.status_code == 504, late.text  # counted as rejected, reason deadline
        assert client.get("/v1/models/churn/predictions/C-000001").json()["source"] == "precomputed"
        assert client.get("/v1/models/churn/predictions/C-000002", params={"fresh": "true"}).status_code == 200
        assert client.get("/v1/models/churn/predictions/NOPE").status_code == 404
        assert client.get("/v1/models/movies/predictions/1").status_code == 200
        event = {"type": "features", "key": "C-000003", "values": {"support_calls_30d": 6}}
        assert client.post("/v1/events", json=event).status_code == 200
        labels = {"model": "churn", "labels": [{"key": "C-000001", "label": 1}]}
        assert client.post("/v1/labels", json=labels).status_code == 200
        redis = Redis.from_url(redis_url)
        redis.xadd(stream, {"event": orjson.dumps({"type": "rating", "user_id": 2, "movie_id": 3, "rating": 4})})
        redis.xadd(stream, {"event": b"{not json"})  # dead-lettered

        deadline = time.monotonic() + 30
        while True:  # the ledger's thread, the label joiner and the stream consumer report a moment later
            text = client.get("/metrics").text
            found = series(text)
            if all(name in found for name in NEEDED) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    missing = [name for name in NEEDED if name not in found]
    assert not missing, f"the traffic did not reach {missing}"
    return found


# -- the dashboard ------------------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels_of(model: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in model["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # a collapsed row keeps its panels inside
    return found


def expressions(model: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels_of(model) for t in p.get("targets", [])]
    exprs += [v["definition"] for v in model["templating"]["list"] if v["type"] == "query"]
    return exprs


def metric_selectors(expr: str) -> list[tuple[str, set[str]]]:
    """Each metric an expression reads, with the labels its `{...}` selector matches on."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values may hold anything
    found = []
    for match in re.finditer(r"\b(foretell_[a-zA-Z0-9_]*)\s*(\{[^}]*\})?", bare):
        labels = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", match.group(2) or ""))
        found.append((match.group(1), labels))
    return found


def other_words(expr: str) -> set[str]:
    """The identifiers of an expression that are neither foretell's metrics nor labels: PromQL's own, or a stranger."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"|\{[^}]*\}|\[[^]]*\]|\b(?:by|without)\s*\([^)]*\)', " ", expr)
    bare = re.sub(r"label_values\(([^,]*),[^)]*\)", r"label_values(\1)", bare)
    return {w for w in re.findall(r"\b[a-zA-Z_][a-zA-Z0-9_]*\b", bare) if not w.startswith("foretell_")}


def groupings(expr: str) -> list[tuple[set[str], str]]:
    """Each `by (labels) (body)` of an expression: the labels, and the body they group."""
    found = []
    for match in re.finditer(r"\bby\s*\(([^)]*)\)\s*\(", expr):
        depth, start = 1, match.end()
        end = start
        while depth:
            depth += {"(": 1, ")": -1}.get(expr[end], 0)
            end += 1
        labels = {label.strip() for label in match.group(1).split(",") if label.strip()}
        found.append((labels, expr[start : end - 1]))
    return found


def test_the_json_is_a_dashboard_grafana_imports_asking_for_a_prometheus_data_source() -> None:
    model = dashboard()
    assert model["schemaVersion"] >= 39
    assert model["uid"] and model["title"] == "foretell"
    assert [(i["name"], i["type"], i["pluginId"]) for i in model["__inputs"]] == [
        ("DS_PROMETHEUS", "datasource", "prometheus")
    ]
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert set(variables) >= {"model", "instance"}
    assert all(v["datasource"] == DATASOURCE for v in variables.values())
    panels = panels_of(model)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        grid = panel["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"} and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["description"], panel["title"]
        assert panel["type"] == "table" or panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE and target["expr"].strip(), panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), panel["title"]
    occupied: set[tuple[int, int]] = set()
    for panel in panels:  # no two panels overlap
        grid = panel["gridPos"]
        cells = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells


def test_every_panel_of_the_issue_is_there() -> None:
    exprs = " ".join(expressions(dashboard()))
    for metric in (
        "foretell_requests_total", "foretell_request_seconds_bucket", "foretell_batch_size_bucket",
        "foretell_queue_wait_seconds_bucket", "foretell_in_flight_requests", "foretell_rejected_total",
        "foretell_lookups_total", "foretell_events_refreshes_total", "foretell_ledger_dropped_total",
        "foretell_ledger_pending_rows", "foretell_ledger_bytes_total", "foretell_events_lag",
        "foretell_events_dead_letters", "foretell_feature_drift_psi", "foretell_labels_joined_total",
        "foretell_rollout_requests_total", "foretell_rollout_errors_total", "foretell_rollout_latency_seconds",
        "foretell_rollout_score_diff", "foretell_rollout_label_flip_rate", "foretell_model_load_seconds",
    ):  # fmt: skip
        assert metric in exprs, metric


def test_the_drift_thresholds_are_foretells_own() -> None:
    from foretell.profiles import Thresholds

    defaults = Thresholds()
    for panel in panels_of(dashboard()):
        if any("foretell_feature_drift_psi" in t["expr"] for t in panel.get("targets", [])):
            steps = [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]
            assert steps == [None, defaults.psi_warn, defaults.psi_alert], panel["title"]


def test_every_metric_and_label_the_dashboard_reads_is_in_the_servers_metrics(scraped: dict[str, set[str]]) -> None:
    problems = []
    for expr in expressions(dashboard()):
        for name, labels in metric_selectors(expr):
            if name not in scraped:
                problems.append(f"{name} is not in /metrics (in {expr})")
                continue
            unknown = labels - scraped[name] - SCRAPE_LABELS
            if unknown:
                problems.append(f"{name} has no label {sorted(unknown)} (in {expr})")
        for labels, body in groupings(expr):
            for name, _ in metric_selectors(body):
                unknown = labels - scraped.get(name, set()) - SCRAPE_LABELS
                if name in scraped and unknown:
                    problems.append(f"by {sorted(unknown)}: {name} has no such label (in {expr})")
        for name, label in re.findall(r"label_values\((\w+),\s*(\w+)\)", expr):
            if label not in scraped.get(name, set()) | SCRAPE_LABELS:
                problems.append(f"label_values: {name} has no label {label}")
        strangers = other_words(expr) - PROMQL_WORDS
        if strangers:
            problems.append(f"{sorted(strangers)} are neither PromQL nor foretell's metrics (in {expr})")
    assert not problems, "\n".join(problems)


def test_the_check_finds_metrics_labels_and_groupings() -> None:
    """The extraction the test above relies on, on expressions whose answer is known."""
    expr = 'sum by (model, arm) (rate(foretell_rollout_errors_total{model=~"$model", arm!="x{"}[$__rate_interval]))'
    assert metric_selectors(expr) == [("foretell_rollout_errors_total", {"model", "arm"})]
    assert groupings(expr) == [
        ({"model", "arm"}, 'rate(foretell_rollout_errors_total{model=~"$model", arm!="x{"}[$__rate_interval])')
    ]
    assert other_words(expr) == {"sum", "rate"}
    assert other_words('up{job="foretell"} or label_values(foretell_requests_total, model)') == {
        "up",
        "or",
        "label_values",
    }
