"""The recommended knobs as a serve config `foretell serve --config` reads, and the batch schedule to run.

Each knob follows from a measured figure, and the file says which:

- `max_batch_size`: twice the requests that arrive during one model call at the peak (at
  least 8, a power of two): room for a burst without making one call much longer.
- `max_delay_ms`: a quarter of what the latency objective leaves after a lone call's p99,
  at most 10 ms (the server's default): waiting for company never costs the objective.
- `max_queue`: the requests one worker finishes within the objective at its measured
  throughput; past that, a request would only time out, so it is refused at once (503).
- `max_age` (hybrid): the freshness need; a need of a day or more gets a twelfth of a day
  of slack, so answers are not re-scored live in the minutes before the next run lands.
- the batch run (batch, hybrid) as a `foretell schedule add` command line, at the time of
  day the latest job ran, or every few hours when the freshness need is shorter than a day.
"""

from __future__ import annotations

import math
import shlex
from datetime import datetime
from typing import Any

from foretell.advisor.cost import Advice, live_cost_per_request

__all__ = ["Knobs", "recommended_knobs", "serve_config_text"]

Knobs = dict[str, Any]


def recommended_knobs(advice: Advice) -> Knobs:
    """`max_batch_size`, `max_delay_ms`, `max_queue`, and `max_age` (seconds, hybrid only) for `advice`."""
    w, m = advice.workload, advice.measurements
    hybrid = advice.recommendation == "hybrid"
    share = 1.0  # real-time: every request reaches the model
    if hybrid:  # only the lookups the store cannot answer fresh do
        share = w.fallback_share if w.fallback_share is not None else max(0.0, 1.0 - w.freshness_s / w.day_s)
    peak_live = w.peak_rps * share
    call_s = m.single_p50_ms / 1000.0
    arriving = peak_live * call_s
    batch = max(8, 2 ** math.ceil(math.log2(max(2.0 * (1.0 + arriving), 1.0))))
    delay = min(10.0, max(0.0, (w.p99_ms - m.single_p99_ms) / 4.0))
    queue = max(batch, math.ceil(m.live_rps * w.p99_ms / 1000.0))
    knobs: Knobs = {"max_batch_size": int(batch), "max_delay_ms": round(delay, 1), "max_queue": int(queue)}
    if hybrid:
        slack = w.day_s / 12.0 if w.freshness_s >= w.day_s else 0.0
        knobs["max_age"] = w.freshness_s + slack
    knobs["peak_cores"] = peak_live * live_cost_per_request(m, peak_live)
    return knobs


def serve_config_text(
    advice: Advice,
    model: str,
    uri: str,
    *,
    latest_job: dict[str, Any] | None = None,
    generated_at: datetime | None = None,
) -> str:
    """A serve config TOML for `model` with the recommended knobs, and the batch schedule as comments."""
    w, m = advice.workload, advice.measurements
    knobs = recommended_knobs(advice)
    name = _key(model)
    lines = [
        f"# foretell advise {uri} --from-ledger: use {advice.recommendation}.",
        f"# {w.description}" if w.description else "#",
    ]
    if generated_at is not None:
        lines.append(f"# written {generated_at.isoformat(timespec='seconds')}")
    lines += [
        "# Serve with: foretell serve --config THIS_FILE",
        "",
        f"[batching.{name}]",
        f"# {w.peak_rps:,.1f} requests/s at the peak, a model call of {m.single_p50_ms:.2f} ms (p50): "
        "twice the requests one call sees, as a power of two",
        f"max_batch_size = {knobs['max_batch_size']}",
        f"# a quarter of what the {w.p99_ms:,.0f} ms objective leaves after a lone call's p99 "
        f"({m.single_p99_ms:.2f} ms), at most 10 ms",
        f"max_delay_ms = {knobs['max_delay_ms']}",
        f"# what one worker answers within {w.p99_ms:,.0f} ms at {m.live_rps:,.0f} requests/s; "
        "later ones get 503 at once",
        f"max_queue = {knobs['max_queue']}",
        "",
    ]
    if "max_age" in knobs:
        lines += [
            f"[hybrid.{name}]",
            f"# the freshness need ({_duration(w.freshness_s)})"
            + (", plus a twelfth of a day of slack for the next run" if w.freshness_s >= w.day_s else ""),
            f'max_age = "{_seconds(knobs["max_age"])}"',
            "",
        ]
    if advice.recommendation in ("batch", "hybrid"):
        lines += _schedule(advice, uri, latest_job)
    else:
        lines += [
            "# real-time: every answer is computed when asked; no batch job and no store needed for this model.",
            "",
        ]
    return "\n".join(lines)


def _schedule(advice: Advice, uri: str, latest_job: dict[str, Any] | None) -> list[str]:
    w, m = advice.workload, advice.measurements
    source = _input_of(latest_job)
    command = ["batch", "run", uri, "--input", str(source), "--output", "scores/{date}"]
    if advice.recommendation == "hybrid":
        command.append("--to-store")
    wall = m.batch_seconds(w.population)
    if w.freshness_s >= w.day_s or w.day_s != 86_400.0:
        cron, why = _daily_cron(latest_job), "once a day"
        if w.day_s != 86_400.0:
            why = f"once a day (a day of {w.day_s:,.0f} s here, a compressed recording)"
    else:
        hours = max(1, math.floor((w.freshness_s - wall) / 3600.0))
        cron, why = f"0 */{hours} * * *", f"every {hours} h, so no answer is older than {_duration(w.freshness_s)}"
    return [
        f"# The batch run, {why}: about {wall:,.0f} s for {w.population:,} rows here. Schedule it with:",
        f"#   foretell schedule add {_schedule_name(uri)} --cron {shlex.quote(cron)} -- {shlex.join(command)}",
        "",
    ]


def _input_of(job: dict[str, Any] | None) -> str:
    """The file the latest job scored (as its index records it), else a placeholder to fill in."""
    described = (job or {}).get("input")
    paths = described.get("paths") if isinstance(described, dict) else None
    if isinstance(paths, list) and len(paths) == 1:
        return str(paths[0])
    return "POPULATION.parquet"


def _daily_cron(latest_job: dict[str, Any] | None) -> str:
    """At the minute of day the latest job ran (it suits the data's arrival), else 02:00 UTC."""
    if latest_job and latest_job.get("predicted_at"):
        moment = datetime.fromisoformat(str(latest_job["predicted_at"]))
        return f"{moment.minute} {moment.hour} * * *"
    return "0 2 * * *"


def _schedule_name(uri: str) -> str:
    base = uri.removeprefix("models:/").split("@")[0].split("/")[0]
    return f"{base}-nightly"


def _key(name: str) -> str:
    """A TOML key: bare when it can be, else quoted."""
    if name and all(c.isalnum() or c in "_-" for c in name) and name.isascii():
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _seconds(seconds: float) -> str:
    """A duration `parse_duration` reads back exactly enough: whole seconds, or the largest unit that divides."""
    whole = round(seconds)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if whole >= size and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s" if seconds >= 1 else f"{max(round(seconds * 1000), 1)}ms"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86_400.0), ("h", 3_600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:,.1f} s"
