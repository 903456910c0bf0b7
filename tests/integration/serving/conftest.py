"""A FORETELL_HOME with real models for the server tests."""

from __future__ import annotations

from pathlib import Path

import joblib
import pytest
from servekit import FEATURES, rows
from sklearn.linear_model import LogisticRegression

import foretell
from foretell.adapters.outputs import classifier_outputs
from foretell.core.feature import Feature
from foretell.core.schema import Output, Signature

SLOW_MODEL = """
import time
import numpy as np


class Slow:
    signature = None

    @classmethod
    def load(cls, path):
        return cls()

    def predict(self, columns):
        time.sleep(0.05)
        return np.asarray(columns["a"], dtype=float) * 2.0
"""


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("serve-home")
    artifacts = tmp_path_factory.mktemp("serve-models")
    x = rows(400, seed=1)
    y = (x[:, 0] - x[:, 1] + 0.3 * x[:, 2] > 0).astype(int)
    path = artifacts / "clf.joblib"
    joblib.dump(LogisticRegression().fit(x, y), path)
    signature = Signature(tuple(Feature(n) for n in FEATURES), classifier_outputs([0, 1]))
    foretell.register("clf", path, signature=signature, aliases=["production"], home=home)
    folder = artifacts / "slow"
    folder.mkdir()
    (folder / "slow.py").write_text(SLOW_MODEL)
    slow_signature = Signature((Feature("a"),), (Output("score", "score"),))
    foretell.register(
        "slow", folder, flavor="python", signature=slow_signature, flavor_options={"class": "slow.py:Slow"}, home=home
    )
    return home
