"""Speed figures for the report: the original and the compiled predictor timed side by side.

Each is timed on one thread (native thread pools capped), as a server's model thread or a
batch worker runs it: one row, 64 rows, and the whole validation sample at once.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from foretell.core.frame import Frame
from foretell.core.predictor import Predictor

__all__ = ["speed_figures"]

_SPEED_BUDGET_SECONDS = 0.25


def speed_figures(original: Predictor, compiled: Predictor, frame: Frame) -> dict[str, Any]:
    """Median time of one row and of 64 rows, and bulk rows/s, each predictor on one thread; and the speed-ups."""
    from threadpoolctl import threadpool_limits

    one, batch = frame.take(slice(0, 1)), frame.take(slice(0, 64))
    figures: dict[str, Any] = {}
    with threadpool_limits(1):
        for label, predictor in (("original", original), ("compiled", compiled)):
            figures[label] = {
                "single_row_us": round(_median_seconds(predictor, one) * 1e6, 1),
                "batch_64_us": round(_median_seconds(predictor, batch) * 1e6, 1),
                "rows_per_second": round(_rows_per_second(predictor, frame)),
            }
    before, after = figures["original"], figures["compiled"]
    figures["speedup"] = {
        "single_row": round(before["single_row_us"] / max(after["single_row_us"], 1e-3), 1),
        "batch_64": round(before["batch_64_us"] / max(after["batch_64_us"], 1e-3), 1),
        "rows_per_second": round(after["rows_per_second"] / max(before["rows_per_second"], 1), 1),
    }
    return figures


def _median_seconds(predictor: Predictor, frame: Frame) -> float:
    predictor.predict(frame)  # first call pays for lazy set-up
    times: list[float] = []
    deadline = time.perf_counter() + _SPEED_BUDGET_SECONDS
    while len(times) < 5 or (time.perf_counter() < deadline and len(times) < 500):
        started = time.perf_counter()
        predictor.predict(frame)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def _rows_per_second(predictor: Predictor, frame: Frame) -> float:
    started = time.perf_counter()
    predictor.predict(frame)
    return frame.n_rows / max(time.perf_counter() - started, 1e-9)
