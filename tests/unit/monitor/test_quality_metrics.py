"""The quality figures against scikit-learn's own, on data with ties, clipped extremes and one-class groups."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.metrics import log_loss as sk_log_loss

from foretell.core.feature import Feature
from foretell.core.schema import Output, Signature
from foretell.monitor.quality import (
    Task,
    accuracy,
    brier_score,
    calibration_table,
    log_loss,
    roc_auc,
    task_of,
)


def sample(n: int, seed: int, *, rounded: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    if rounded:  # many ties, and exact 0 and 1 that log loss must clip
        p = np.round(p, 1)
    y = rng.random(n) < p * 0.8 + 0.1
    return y, p


@pytest.mark.parametrize(("n", "seed", "rounded"), [(50, 0, False), (5000, 1, True), (100_000, 2, False), (7, 3, True)])
def test_auc_log_loss_brier_equal_scikit_learns(n: int, seed: int, rounded: bool) -> None:
    y, p = sample(n, seed, rounded=rounded)
    assert roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-9)
    assert log_loss(y, p) == pytest.approx(sk_log_loss(y, p, labels=[False, True]), abs=1e-9)
    assert brier_score(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert accuracy(y, p, 0.5) == pytest.approx(np.mean((p > 0.5) == y))


def test_auc_of_one_class_is_none_and_log_loss_still_defined() -> None:
    y = np.ones(10, dtype=bool)
    p = np.linspace(0, 1, 10)
    assert roc_auc(y, p) is None
    assert log_loss(y, p) == pytest.approx(sk_log_loss(y, p, labels=[False, True]), abs=1e-9)


def test_calibration_bins_as_calibration_curve_bins_them() -> None:
    y, p = sample(20_000, 4, rounded=False)
    p[:5] = [0.0, 0.1, 0.2, 0.9999, 1.0]  # edges fall in the bin scikit-learn puts them in
    table = calibration_table(y, p)
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="uniform")
    filled = [b for b in table if b.count]
    assert [b.observed_rate for b in filled] == pytest.approx(observed, abs=1e-12)
    assert [b.mean_predicted for b in filled] == pytest.approx(predicted, abs=1e-12)
    assert sum(b.count for b in table) == len(p)
    assert (table[0].lower, table[0].upper) == (0.0, pytest.approx(0.1))


def test_calibration_bins_left_empty_say_so() -> None:
    table = calibration_table(np.array([True, False]), np.array([0.05, 0.95]))
    assert [b.count for b in table] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert table[1].mean_predicted is None and table[1].observed_rate is None


def test_what_is_measured_follows_the_signature() -> None:
    features = (Feature("x", "float64"),)
    binary = Signature(
        features,
        (Output("score", "score"), Output("label", "label", "int64"),
         Output("proba", "proba", shape=(2,), classes=(0, 1))),
    )  # fmt: skip
    assert task_of(binary) == Task("binary", "score", positive=1, threshold=0.5)
    assert task_of(Signature(features, (Output("score", "score"),))) == Task("regression", "score")
    recommender = Signature(
        features,
        (Output("items", "topk_items", "int64", shape=(10,)), Output("scores", "topk_scores", shape=(10,))),
    )
    assert task_of(recommender) == Task("recommender", "items")
    three = Signature(
        features,
        (Output("label", "label", "string"), Output("proba", "proba", shape=(3,), classes=("a", "b", "c"))),
    )
    assert task_of(three) == Task("none")
    assert task_of(None) == Task("none")
