"""A FORETELL_HOME with real models for the gRPC tests, and `foretell serve --grpc-port` processes over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import joblib
import pytest
from grpckit import Served
from servekit import FEATURES, free_port, in_process, rows, server
from sklearn.linear_model import LogisticRegression

import foretell
from foretell.adapters.outputs import classifier_outputs
from foretell.core.feature import Feature
from foretell.core.schema import Output, Signature

MODELS = '''
import time
import numpy as np


class Tiers:
    """score = a, times 10 for the 'pro' tier."""

    @classmethod
    def load(cls, path):
        return cls()

    def predict(self, columns):
        a = np.asarray(columns["a"], dtype=float)
        return np.where(np.asarray(columns["tier"]) == 1, a * 10, a)


class TopK:
    """User u's top k items are u*10, u*10+1, ...; scores 1, 1/2, 1/3."""

    @classmethod
    def load(cls, path):
        return cls()

    def predict(self, columns, k=3):
        users = np.asarray(columns["user_id"], dtype=np.int64)
        items = users[:, None] * 10 + np.arange(k)[None, :]
        return {"items": items, "scores": np.broadcast_to(1 / (1 + np.arange(k)), items.shape).copy()}


class Slow:
    """Takes a second per call: long enough to send SIGTERM while a request is in flight."""

    @classmethod
    def load(cls, path):
        return cls()

    def predict(self, columns):
        time.sleep(1.0)
        return np.asarray(columns["a"], dtype=float) * 2.0
'''


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("grpc-home")
    artifacts = tmp_path_factory.mktemp("grpc-models")
    x = rows(400, seed=1)
    y = (x[:, 0] - x[:, 1] + 0.3 * x[:, 2] > 0).astype(int)
    path = artifacts / "clf.joblib"
    joblib.dump(LogisticRegression().fit(x, y), path)
    signature = Signature(tuple(Feature(n) for n in FEATURES), classifier_outputs([0, 1]))
    foretell.register("clf", path, signature=signature, aliases=["production"], home=home)
    folder = artifacts / "python"
    folder.mkdir()
    (folder / "grpcmodels.py").write_text(MODELS)
    signatures = {
        "Tiers": Signature(
            (Feature("a"), Feature("tier", "category", categories=("basic", "pro"))), (Output("score", "score"),)
        ),
        "TopK": Signature(
            (Feature("user_id", "int64"),),
            (
                Output("items", "topk_items", "int64", shape=(3,)),
                Output("scores", "topk_scores", "float64", shape=(3,)),
            ),
        ),
        "Slow": Signature((Feature("a"),), (Output("score", "score"),)),
    }
    for cls, model_signature in signatures.items():
        foretell.register(
            cls.lower(),
            folder,
            flavor="python",
            signature=model_signature,
            flavor_options={"class": f"grpcmodels.py:{cls}"},
            compile=False,
            home=home,
        )
    return home


@pytest.fixture(scope="module", params=["process", "in-process"])
def served(home: Path, request: pytest.FixtureRequest) -> Iterator[Served]:
    """clf, tiers and topk over REST and gRPC, from one `foretell serve` process, and again from this process.

    In this process the server's code is measured, and tritonclient's stubs live beside foretell's:
    both define `inference.*`, which foretell keeps in a descriptor pool of its own.
    """
    port = free_port()
    if request.param == "process":
        with server(home, "clf", "tiers", "topk", "--grpc-port", str(port)) as url:
            yield Served(url, f"127.0.0.1:{port}")
        return
    app = foretell.api.create_server_app(["clf", "tiers", "topk"], home=home, grpc_port=port, reload_seconds=0)
    with in_process(app) as url:
        yield Served(url, f"127.0.0.1:{port}")
