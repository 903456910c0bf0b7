"""Rollouts on a real server: shadow and canary, the guards' decisions, sticky arms across workers and restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest
from servekit import server
from test_ledger_server import ledger_rows, stamp
from test_live_gauges import wait_for

import foretell
from foretell.core.feature import Feature
from foretell.core.schema import Output, Signature
from foretell.registry import open_registry
from foretell.rollout import Guards, Rollout, arm_for, new_rollout, staged_store_name
from foretell.store import SqliteStore
from foretell.store.entities_sqlite import SqliteEntityStore

MODEL = """
import time
import numpy as np

BEHAVIOUR = {behaviour!r}


class Scorer:
    signature = None

    @classmethod
    def load(cls, path):
        return cls()

    def predict(self, columns):
        a = np.asarray(columns["a"], dtype=float)
        if BEHAVIOUR == "broken" and a.any():  # the server's warm-up row (all zeros) passes; traffic does not
            raise RuntimeError("this challenger fails on every call")
        b = np.asarray(columns["b"], dtype=float)
        score = 1.0 / (1.0 + np.exp(-(a - b)))
        label = (score > 0.5).astype(np.int64)
        if BEHAVIOUR == "flip":
            label = np.where(flipped(a), 1 - label, label)
        if BEHAVIOUR == "shifted":
            score = np.clip(score + 0.1, 0.0, 1.0)
        return {{"score": score, "label": label}}


def flipped(a):
    return np.floor(np.abs(a) * 1e4) % 20 == 0  # about 5 % of rows, the same rows every time
"""

SIGNATURE = Signature(
    (Feature("a"), Feature("b")), (Output("score", "score", "float64"), Output("label", "label", "int64"))
)
#: Version by behaviour, as registered by the `home` fixture.
VERSIONS = {"champion": 1, "identical": 2, "broken": 3, "flip": 4, "shifted": 5}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    for behaviour, version in VERSIONS.items():
        folder = tmp_path / behaviour
        folder.mkdir()
        (folder / "scorer.py").write_text(MODEL.format(behaviour="plain" if version == 1 else behaviour))
        info = foretell.register(
            "scorer",
            folder,
            flavor="python",
            signature=SIGNATURE,
            flavor_options={"class": "scorer.py:Scorer"},
            aliases=["production"] if version == 1 else [],
            home=home,
        )
        assert info.version == version
    (home / "serve.toml").write_text("[ledger]\nflush_seconds = 0.2\n")
    return home


def start(home: Path, challenger: str, mode: str, percent: float, **options: Any) -> Rollout:
    registry = open_registry(home)
    guards = Guards(**options.pop("guards", {}))
    plan = new_rollout("scorer", 1, VERSIONS[challenger], mode, percent, guards=guards, **options)  # type: ignore[arg-type]
    return registry.rollouts.start(plan)


def body(n: int, seed: int, **parameters: Any) -> dict[str, Any]:
    data = np.random.default_rng(seed).normal(size=(n, 2)).round(6)
    document: dict[str, Any] = {
        "inputs": [{"name": "input-0", "shape": [n, 2], "datatype": "FP64", "data": data.tolist()}]
    }
    if parameters:
        document["parameters"] = parameters
    return document


def attached(client: httpx.Client) -> bool:
    return "foretell_rollout_active{" in client.get("/metrics").text


def serve(home: Path, *args: str) -> Any:
    return server(home, "scorer@production", "--config", str(home / "serve.toml"), *args)


def test_an_identical_challenger_in_shadow_diverges_by_nothing_and_is_promoted_after_min_requests(home: Path) -> None:
    with serve(home) as url, httpx.Client(base_url=url, timeout=30) as client:
        rollout = start(home, "identical", "shadow", 100, auto=True, guards={"min_requests": 40})
        assert wait_for(lambda: attached(client)), "the server did not pick the rollout up"
        for i in range(60):
            response = client.post("/v2/models/scorer/infer", json={**body(5, i), "id": f"req-{i}"})
            assert response.status_code == 200
            assert response.headers["x-model-version"] == "1"  # in shadow the champion answers
        registry = open_registry(home)
        ended = wait_for(lambda: r if (r := registry.rollouts.latest("scorer")) and not r.active else None)
        assert ended is not None and ended.state == "promoted", ended
        assert registry.get("scorer@production").version == 2
        stats = registry.rollouts.stats(rollout.id)
        assert stats.compared >= 40 * 5 and stats.flips == 0 and stats.diffs.quantile(1.0) == 0.0
        assert stats.challenger.errors == 0
        # The alias moved: within about a second the server answers with version 2.
        assert wait_for(
            lambda: client.post("/v2/models/scorer/infer", json=body(1, 99)).headers["x-model-version"] == "2"
        )
        assert [e["action"] for e in registry.rollouts.events(rollout.id)] == ["started", "promoted"]
    rows = [r for r in ledger_rows(home, "scorer") if r["status"] == "ok"]
    live = {r["request_id"]: r for r in rows if r["source"] == "live" and r["version"] == 1}
    live.update({r["prediction_id"]: r for r in rows if r["source"] == "live" and r["request_id"] is None})
    shadow = {r["request_id"]: r for r in rows if r["source"] == "shadow"}
    # The same request, both versions: tied by the client's id, else by the answer's prediction id.
    assert {f"req-{i}" for i in range(60)} <= set(shadow) <= set(live)
    for request_id, row in shadow.items():
        assert row["version"] == 2
        assert row["outputs"] == live[request_id]["outputs"]


@pytest.mark.parametrize(("mode", "percent"), [("shadow", 100), ("canary", 50)])
def test_a_challenger_failing_every_call_costs_clients_nothing_and_is_aborted(
    home: Path, mode: str, percent: float
) -> None:
    with serve(home) as url, httpx.Client(base_url=url, timeout=30) as client:
        rollout = start(home, "broken", mode, percent, auto=True, guards={"min_requests": 1000})
        assert wait_for(lambda: attached(client))
        registry = open_registry(home)
        statuses, versions = [], set()
        for i in range(120):
            response = client.post("/v2/models/scorer/infer", json=body(2, i))
            statuses.append(response.status_code)
            versions.add(response.headers["x-model-version"])
            if i >= 60 and not registry.rollouts.latest("scorer").active:  # type: ignore[union-attr]
                break
        assert set(statuses) == {200} and versions == {"1"}
        ended = wait_for(lambda: r if (r := registry.rollouts.latest("scorer")) and not r.active else None)
        assert ended is not None and ended.state == "aborted"
        assert ended.reason is not None and "max_error_rate broken" in ended.reason
        assert registry.get("scorer@production").version == 1  # an abort leaves the alias alone
        events = registry.rollouts.events(rollout.id)
        assert events[-1]["action"] == "aborted" and events[-1]["figures"]["challenger"]["errors"] >= 20
        assert wait_for(lambda: not attached(client)), "the aborted challenger is still attached"
    failures = [r for r in ledger_rows(home, "scorer") if r["source"] == "shadow" and r["status"] == "error"]
    assert failures and all("fails on every call" in r["error"] for r in failures)


def test_a_challenger_flipping_five_percent_of_labels_is_measured_and_blocked(home: Path) -> None:
    sent = []
    with serve(home) as url, httpx.Client(base_url=url, timeout=30) as client:
        rollout = start(
            home, "flip", "shadow", 100, auto=True, guards={"min_requests": 20, "max_label_flip_rate": 0.02}
        )
        assert wait_for(lambda: attached(client))
        for i in range(80):
            document = body(50, 1000 + i)
            sent.append(np.asarray(document["inputs"][0]["data"]))
            assert client.post("/v2/models/scorer/infer", json=document).status_code == 200
        registry = open_registry(home)
        stats = wait_for(lambda: s if (s := registry.rollouts.stats(rollout.id)).compared == 4000 else None)
        assert stats is not None, registry.rollouts.stats(rollout.id)
        a = np.concatenate(sent)[:, 0]
        expected = float(np.mean(np.floor(np.abs(a) * 1e4) % 20 == 0))
        assert 0.04 <= expected <= 0.06
        assert stats.flip_rate is not None and abs(stats.flip_rate - expected) <= 0.01
        assert wait_for(lambda: any(e["action"] == "blocked" for e in registry.rollouts.events(rollout.id)))
        still = registry.rollouts.latest("scorer")
        assert still is not None and still.active  # blocked, not promoted, not aborted
        assert registry.get("scorer@production").version == 1
        metrics = client.get("/metrics").text
        assert 'foretell_rollout_compared_rows_total{model="scorer"}' in metrics
        assert 'foretell_rollout_label_flip_rate{model="scorer"}' in metrics


def arms_seen(client: httpx.Client, keys: list[str]) -> dict[str, str]:
    seen = {}
    for key in keys:
        response = client.post("/v2/models/scorer/infer", json=body(1, 7, key=[key]))
        assert response.status_code == 200
        seen[key] = response.headers["x-model-version"]
    return seen


def test_a_canary_keeps_each_key_on_one_arm_across_workers_and_restarts(home: Path) -> None:
    rollout = start(home, "shifted", "canary", 20, guards={"min_requests": 100_000})
    keys = [f"C-{i:05d}" for i in range(300)]
    expected = {k: "5" if arm_for(rollout.id, k, 20) == "challenger" else "1" for k in keys}
    with serve(home, "--workers", "2") as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            first = arms_seen(client, keys)
        with httpx.Client(base_url=url, timeout=30) as client:  # a new connection may land on the other worker
            second = arms_seen(client, keys)
    with serve(home) as url, httpx.Client(base_url=url, timeout=30) as client:
        after_restart = arms_seen(client, keys)
    assert first == second == after_restart == expected
    share = sum(v == "5" for v in first.values()) / len(keys)
    assert 0.12 <= share <= 0.28
    stats = open_registry(home).rollouts.stats(rollout.id)
    assert stats.challenger.requests > 0 and stats.champion.requests > 0
    assert stats.compared > 0 and stats.diffs.quantile(0.5) == pytest.approx(0.1, abs=0.02)  # the champion shadows


def test_canary_lookups_serve_the_challengers_staged_generation_to_its_keys(home: Path) -> None:
    keys = [f"E-{i}" for i in range(60)]
    data = np.random.default_rng(5).normal(size=(60, 2)).round(6)
    now = stamp(__import__("datetime").datetime.now(__import__("datetime").UTC))
    entities = pa.table({"id": keys, "a": data[:, 0], "b": data[:, 1]})
    SqliteEntityStore(home / "entities.db").load_features("things", "id", entities, models=["scorer"], at=now)
    store = SqliteStore(home / "store.db")
    for name, version, score in (("scorer", 1, 0.25), (staged_store_name("scorer", 5), 5, 0.75)):
        generation = store.begin_generation(name)
        store.write_batch(name, generation, [(k, {"score": score, "label": 0}, version, now) for k in keys[:40]])
        store.publish(name, generation)
    rollout = start(home, "shifted", "canary", 50, guards={"min_requests": 100_000})
    with serve(home) as url, httpx.Client(base_url=url, timeout=30) as client:
        for key in keys:
            response = client.get(f"/v1/models/scorer/predictions/{key}")
            assert response.status_code == 200, response.text
            found = response.json()
            arm = arm_for(rollout.id, key, 50)
            assert found["model_version"] == (5 if arm == "challenger" else 1), (key, found)
            assert response.headers["x-model-version"] == str(found["model_version"])
            if key in keys[:40]:  # stored: the arm's own generation
                assert found["source"] == "precomputed"
                assert found["prediction"]["score"] == (0.75 if arm == "challenger" else 0.25)
            else:  # not stored: predicted live by the arm's version and written back beside its generation
                assert found["source"] == "live"
        batch = client.post("/v1/models/scorer/predictions:batchGet", json={"keys": keys}).json()
        versions = {p["key"]: p["model_version"] for p in batch["predictions"]}
        assert versions == {k: 5 if arm_for(rollout.id, k, 50) == "challenger" else 1 for k in keys}
        # An event refreshes a key with its arm's version, written back beside that arm's predictions.
        evented = [next(k for k in keys if arm_for(rollout.id, k, 50) == arm) for arm in ("champion", "challenger")]
        for key in evented:
            event = {"type": "features", "entity": "things", "key": key, "values": {"a": 2.0, "b": 0.0}}
            refreshed = client.post("/v1/events", json=event).json()["refreshed"][0]
            assert refreshed["model_version"] == (5 if arm_for(rollout.id, key, 50) == "challenger" else 1)
            assert refreshed["prediction"]["score"] == pytest.approx(
                1 / (1 + np.exp(-2.0)) + (0.1 if refreshed["model_version"] == 5 else 0)
            )
            again = client.get(f"/v1/models/scorer/predictions/{key}").json()
            assert (again["source"], again["prediction"]) == ("live", refreshed["prediction"])
        # Promoted: everyone reads version 5's staged generation until a nightly one is published for it.
        registry = open_registry(home)
        assert registry.rollouts.end(rollout, "promoted", "by the test") is not None
        # A key that is not stored (the others stay as stored) and was the champion's: version 5 once swapped.
        unstored = next(k for k in keys[40:] if arm_for(rollout.id, k, 50) == "champion")
        fresh = f"/v1/models/scorer/predictions/{unstored}?fresh=true"
        assert wait_for(lambda: client.get(fresh).headers["x-model-version"] == "5")
        for key in [k for k in keys[:40] if k not in evented]:
            found = client.get(f"/v1/models/scorer/predictions/{key}").json()
            assert (found["model_version"], found["prediction"]["score"]) == (5, 0.75), found
    challenger_keys = [k for k in keys[40:] if arm_for(rollout.id, k, 50) == "challenger"]
    written = SqliteStore(home / "store.db").get_many(staged_store_name("scorer", 5), challenger_keys)
    assert set(written) == set(challenger_keys)
