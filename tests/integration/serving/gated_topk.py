"""A top-k model (python flavor) that a test can hold mid-call, to fill a server's queue on purpose.

Loaded in the test's own process (the server runs in a thread there), so the test and the
server share `GatedTopK.gate`.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from foretell.core.schema import Feature, Output, Signature


class GatedTopK:
    gate = threading.Event()
    entered = threading.Event()
    signature = Signature(
        inputs=(Feature("user_id", "int64"),),
        outputs=(
            Output("items", "topk_items", "int64", shape=(3,)),
            Output("scores", "topk_scores", "float64", shape=(3,)),
        ),
    )

    @classmethod
    def load(cls, path: Path) -> GatedTopK:
        cls.gate.set()
        return cls()

    def predict(self, columns: Any, k: int = 3) -> dict[str, np.ndarray]:
        time.sleep(0.006)  # slower than 5 ms: the server always runs it on the model's own thread, never inline
        type(self).entered.set()
        assert type(self).gate.wait(timeout=20), "the test never opened the gate"
        users = np.asarray(columns["user_id"], dtype=np.int64)
        items = users[:, None] * 10 + np.arange(k)[None, :]
        return {"items": items, "scores": np.ones(items.shape) / (1 + np.arange(k))}
