"""OpenTelemetry tracing against a real server (uvicorn on a real socket, in this process) and a real batch job.

The spans go to the SDK's in-memory exporter, so each test reads the span tree the
server made: one span per request continuing the caller's `traceparent`, its children,
and the batch span linked to every request it answered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from servekit import FEATURES, free_port, in_process, rows

import foretell
from foretell import tracing
from foretell.errors import InvalidServeConfig
from foretell.store.entities_sqlite import SqliteEntityStore

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.enable(SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        tracing.disable()


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def named(found: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in found if s.name == name]


def children(found: Sequence[ReadableSpan], parent: ReadableSpan) -> list[str]:
    return sorted(s.name for s in found if s.parent is not None and s.parent.span_id == parent.context.span_id)


def infer_body(n: int, seed: int) -> dict:
    return {"inputs": [{"name": "input", "shape": [n, 4], "datatype": "FP64", "data": rows(n, seed).ravel().tolist()}]}


def test_concurrent_requests_batched_together_each_get_a_span_tree_and_the_batch_links_them(home, spans):
    app = foretell.api.create_server_app(["slow"], home=home, reload_seconds=0, max_delay_ms=0)
    with in_process(app) as url:
        inputs = {"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0]}]}
        with ThreadPoolExecutor(6) as pool:
            first = pool.submit(httpx.post, f"{url}/v2/models/slow/infer", json=inputs, timeout=30)
            time.sleep(0.02)  # the first request is in the model (50 ms): the next five queue behind it together
            rest = [pool.submit(httpx.post, f"{url}/v2/models/slow/infer", json=inputs, timeout=30) for _ in range(5)]
            answers = [first.result(), *(r.result() for r in rest)]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    found = spans.get_finished_spans()

    requests = named(found, "infer")
    assert len(requests) == 6
    by_id = {r.context.span_id: r for r in requests}
    for request in requests:
        assert request.attributes is not None
        assert attrs(request)["foretell.model"] == "slow"
        assert attrs(request)["foretell.status"] == 200
        assert attrs(request)["http.response.status_code"] == 200
        assert {"decode", "queue wait", "ledger enqueue"} <= set(children(found, request))
    batches = named(found, "batch")
    shared = [b for b in batches if len(b.links) > 1]
    assert shared, f"no batch held several requests: {[len(b.links) for b in batches]}"
    linked_to = [link.context.span_id for b in batches for link in b.links]
    assert sorted(linked_to) == sorted(by_id), "every request is linked from exactly one batch"
    for batch in batches:
        assert batch.attributes is not None
        assert attrs(batch)["foretell.batch.requests"] == len(batch.links)
        assert batch.parent is not None and batch.parent.span_id in {link.context.span_id for link in batch.links}
        assert children(found, batch) == ["batch formation", "model call"]
    # Each response names its own request span, for the client to find it.
    answered = {int(a.headers["traceparent"].split("-")[2], 16) for a in answers}
    assert answered == set(by_id)


def test_a_caller_traceparent_is_continued_and_a_wrong_one_starts_a_new_trace(home, spans):
    app = foretell.api.create_server_app(["clf@production"], home=home, reload_seconds=0)
    with in_process(app) as url:
        parent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
        continued = httpx.post(f"{url}/v2/models/clf/infer", json=infer_body(3, 1), headers={"traceparent": parent})
        fresh = httpx.post(f"{url}/v2/models/clf/infer", json=infer_body(3, 1), headers={"traceparent": "junk"})
        refused = httpx.post(f"{url}/v2/models/clf/infer", json={"inputs": []}, headers={"traceparent": parent})
    assert continued.status_code == fresh.status_code == 200
    assert refused.status_code == 400
    request = next(s for s in named(spans.get_finished_spans(), "infer") if attrs(s)["foretell.status"] == 200)
    assert f"{request.context.trace_id:032x}" == CALLER_TRACE
    assert request.parent is not None and f"{request.parent.span_id:016x}" == CALLER_SPAN
    assert continued.headers["traceparent"] == f"00-{CALLER_TRACE}-{request.context.span_id:016x}-01"
    assert not fresh.headers["traceparent"].startswith(f"00-{CALLER_TRACE}")
    assert refused.headers["traceparent"].startswith(f"00-{CALLER_TRACE}-")
    failed = next(s for s in named(spans.get_finished_spans(), "infer") if attrs(s)["foretell.status"] == 400)
    assert f"{failed.context.trace_id:032x}" == CALLER_TRACE


def test_probes_and_metrics_make_no_spans(home, spans):
    app = foretell.api.create_server_app(["clf@production"], home=home, reload_seconds=0)
    with in_process(app) as url:
        for path in ("/v2/health/live", "/v2/health/ready", "/metrics"):
            answer = httpx.get(f"{url}{path}")
            assert answer.status_code == 200
            assert "traceparent" not in answer.headers
    assert spans.get_finished_spans() == ()


@pytest.fixture
def hybrid_home(tmp_path: Path) -> Path:
    import joblib
    from sklearn.linear_model import LogisticRegression

    from foretell.adapters.outputs import classifier_outputs
    from foretell.core.feature import Feature
    from foretell.core.schema import Signature

    x = rows(200, seed=3)
    path = tmp_path / "clf.joblib"
    joblib.dump(LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)), path)
    signature = Signature(tuple(Feature(n) for n in FEATURES), classifier_outputs([0, 1]))
    home = tmp_path / "home"
    foretell.register("clf", path, signature=signature, aliases=["production"], home=home)
    things = pa.table({"id": ["T-1", "T-2"], **{n: rows(2, seed=4)[:, i] for i, n in enumerate(FEATURES)}})
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    SqliteEntityStore(home / "entities.db").load_features("things", "id", things, models=["clf"], at=at)
    return home


def test_a_lookup_that_falls_back_to_a_live_prediction_says_so_and_shows_its_reads_and_writes(hybrid_home, spans):
    app = foretell.api.create_server_app(["clf@production"], home=hybrid_home, reload_seconds=0)
    with in_process(app) as url:
        fallback = httpx.get(f"{url}/v1/models/clf/predictions/T-1")
        again = httpx.get(f"{url}/v1/models/clf/predictions/T-1")  # written back: now a hit
        missing = httpx.get(f"{url}/v1/models/clf/predictions/nobody")
    assert fallback.status_code == again.status_code == 200
    assert missing.status_code == 404
    found = spans.get_finished_spans()
    lookups = named(found, "lookup")
    assert [attrs(s)["foretell.hybrid.outcome"] for s in lookups] == ["fallback", "hit", "miss"]
    first = lookups[0]
    assert attrs(first)["http.request.method"] == "GET"
    assert {"store read", "entity read", "queue wait", "store write"} <= set(children(found, first))
    assert children(found, lookups[1]) == ["ledger enqueue", "store read"]  # the stored answer is recorded too
    assert attrs(lookups[0])["foretell.hybrid.fallbacks"] == 1


def test_a_batch_job_has_one_span_and_one_child_per_chunk(home, tmp_path, spans):
    n = 250
    table = pa.table({"id": list(range(n)), **{f: rows(n, seed=9)[:, i] for i, f in enumerate(FEATURES)}})
    pq.write_table(table, tmp_path / "in.parquet")
    result = foretell.api.run_batch(
        "clf@production", tmp_path / "in.parquet", tmp_path / "out", home=home, chunk_rows=100, workers=1, ledger=False
    )
    assert result.rows == n
    found = spans.get_finished_spans()
    (job,) = named(found, "batch job")
    chunks = named(found, "chunk")
    assert sorted(attrs(c)["foretell.chunk"] for c in chunks) == [0, 1, 2]
    assert sorted(attrs(c)["foretell.rows"] for c in chunks) == [50, 100, 100]
    for chunk in chunks:
        assert chunk.parent is not None and chunk.parent.span_id == job.context.span_id
        assert chunk.context.trace_id == job.context.trace_id
        assert children(found, chunk) == ["part write", "predict"]


def test_a_batch_job_on_worker_processes_continues_the_jobs_trace(home, tmp_path):
    """Chunks scored in worker processes export their own spans (here to the console), under the job's trace."""
    n = 200
    table = pa.table({"id": list(range(n)), **{f: rows(n, seed=9)[:, i] for i, f in enumerate(FEATURES)}})
    pq.write_table(table, tmp_path / "in.parquet")
    script = (
        "import sys, foretell.api\n"
        "foretell.api.run_batch('clf@production', sys.argv[1], sys.argv[2], home=sys.argv[3], chunk_rows=100,"
        " workers=2, ledger=False, tracing=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "in.parquet"), str(tmp_path / "out"), str(home)],
        env={**os.environ, "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "nightly"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    printed = [json.loads(s) for s in _json_objects(done.stdout)]
    jobs = [s for s in printed if s["name"] == "batch job"]
    chunks = [s for s in printed if s["name"] == "chunk"]
    assert len(jobs) == 1 and len(chunks) == 2, done.stdout[-2000:]
    assert {c["context"]["trace_id"] for c in chunks} == {jobs[0]["context"]["trace_id"]}
    assert {c["parent_id"] for c in chunks} == {jobs[0]["context"]["span_id"]}
    assert {s["resource"]["attributes"]["service.name"] for s in printed} == {"nightly"}


def _json_objects(text: str) -> list[str]:
    """The console exporter prints one indented JSON object per span, one after another."""
    objects, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "{":
            depth, start = depth + 1, (i if depth == 0 else start)
        elif char == "}":
            depth -= 1
            if depth == 0:
                objects.append(text[start : i + 1])
    return objects


def test_tracing_off_imports_no_opentelemetry_module_and_makes_no_spans(home):
    script = f"""
import os, sys, threading, time, httpx, uvicorn, foretell.api
app = foretell.api.create_server_app(["clf@production"], home={str(home)!r}, reload_seconds=0)
server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port={free_port()}, log_level="warning"))
thread = threading.Thread(target=server.run, daemon=True)
thread.start()
while not server.started:
    time.sleep(0.01)
port = server.servers[0].sockets[0].getsockname()[1]
body = {{"inputs": [{{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [0.1, 0.2, 0.3, 0.4]}}]}}
answer = httpx.post(f"http://127.0.0.1:{{port}}/v2/models/clf/infer", json=body)
assert answer.status_code == 200 and "traceparent" not in answer.headers, answer.headers
server.should_exit = True
thread.join(30)  # a server thread still running while the interpreter exits may crash it
print("opentelemetry modules:", sorted(m for m in sys.modules if m.startswith("opentelemetry")), flush=True)
os._exit(0)  # what is measured is printed; the teardown of a server embedded in a daemon thread is not under test
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    said = [line for line in done.stdout.splitlines() if line.startswith("opentelemetry modules:")]
    assert done.returncode == 0 and said == ["opentelemetry modules: []"], (done.stdout[-3000:], done.stderr[-3000:])


def test_tracing_without_the_sdk_says_which_extra_to_install():
    script = (
        "import sys\n"
        "sys.modules['opentelemetry.sdk'] = None\n"  # as when foretell[otel] is not installed
        "from foretell import tracing\n"
        "try:\n"
        "    tracing.require()\n"
        "except ImportError as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.startswith("MissingExtra ")
    assert "pip install 'foretell[otel]'" in done.stdout


def test_an_unknown_exporter_is_refused_by_name():
    with pytest.raises(InvalidServeConfig, match=r"OTEL_TRACES_EXPORTER must be one of .*got 'zipkin'"):
        tracing.require({"OTEL_TRACES_EXPORTER": "zipkin"})
    tracing.require({"OTEL_TRACES_EXPORTER": "none"})
    assert not tracing.enabled()


def test_a_caller_that_did_not_sample_its_trace_gets_none_recorded_here(home, spans):
    app = foretell.api.create_server_app(["clf@production"], home=home, reload_seconds=0)
    with in_process(app) as url:
        parent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"
        answer = httpx.post(f"{url}/v2/models/clf/infer", json=infer_body(2, 1), headers={"traceparent": parent})
    assert answer.status_code == 200
    assert answer.headers["traceparent"].startswith(f"00-{CALLER_TRACE}-")
    assert answer.headers["traceparent"].endswith("-00")
    assert spans.get_finished_spans() == ()


def test_every_traced_answer_names_its_span_once_whichever_way_it_was_answered(home, spans):
    """Infer answers through `asgi.reply`, metadata through a Starlette route, a refused key before either."""
    app = foretell.api.create_server_app(["clf@production"], home=home, reload_seconds=0, api_key="sesame")
    key = {"x-api-key": "sesame"}
    with in_process(app) as url:
        inferred = httpx.post(f"{url}/v2/models/clf/infer", json=infer_body(2, 1), headers=key)
        described = httpx.get(f"{url}/v2/models/clf", headers=key)
        refused = httpx.post(f"{url}/v2/models/clf/infer", json=infer_body(2, 1))
        missing = httpx.get(f"{url}/v2/nowhere", headers=key)
    assert [a.status_code for a in (inferred, described, refused, missing)] == [200, 200, 401, 404]
    found = spans.get_finished_spans()
    requests = {s.context.span_id: s for s in found if s.parent is None}
    for answer in (inferred, described, refused, missing):
        assert len(answer.headers.get_list("traceparent")) == 1, answer.headers
        span = requests[int(answer.headers["traceparent"].split("-")[2], 16)]
        assert attrs(span)["http.response.status_code"] == answer.status_code
    assert sorted(s.name for s in requests.values()) == ["GET", "POST", "infer", "metadata"]
