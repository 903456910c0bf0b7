"""Divergence: the score difference and label flips of scores, probabilities, labels and top-k lists."""

from __future__ import annotations

import json

import numpy as np
import pytest

from foretell.core.predictor import Predictions
from foretell.core.schema import Output
from foretell.rollout import Comparison, RolloutStats, compare

BINARY = (
    Output("label", "label", "int64"),
    Output("proba", "proba", shape=(2,), classes=(0, 1)),
    Output("score", "score"),
)


def binary(scores: list[float]) -> Predictions:
    score = np.array(scores)
    proba = np.column_stack([1 - score, score])
    return Predictions({"label": (score > 0.5).astype(np.int64), "proba": proba, "score": score}, BINARY, len(scores))


def test_scores_differ_by_their_absolute_difference_and_labels_flip() -> None:
    found = compare(binary([0.1, 0.6, 0.9]), binary([0.2, 0.4, 0.9]))
    np.testing.assert_allclose(found.diffs, [0.1, 0.2, 0.0])
    assert found.flips is not None and found.flips.tolist() == [False, True, False]


def test_a_regressor_has_differences_and_no_flips() -> None:
    outputs = (Output("value", "value"),)
    found = compare(Predictions({"value": np.array([1.0, 2.0])}, outputs, 2),
                    Predictions({"value": np.array([1.5, 2.0])}, outputs, 2))  # fmt: skip
    np.testing.assert_allclose(found.diffs, [0.5, 0.0])
    assert found.flips is None


def test_probabilities_alone_use_the_largest_class_difference_and_the_argmax() -> None:
    outputs = (Output("proba", "proba", shape=(3,), classes=("a", "b", "c")),)
    a = np.array([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4]])
    b = np.array([[0.6, 0.3, 0.1], [0.5, 0.3, 0.2]])
    found = compare(Predictions({"proba": a}, outputs, 2), Predictions({"proba": b}, outputs, 2))
    np.testing.assert_allclose(found.diffs, [0.1, 0.2])
    assert found.flips is not None and found.flips.tolist() == [False, True]


def test_labels_alone_flip_and_have_no_score() -> None:
    outputs = (Output("label", "label", "string"),)
    a = Predictions({"label": np.array(["yes", "no"], dtype=object)}, outputs, 2)
    b = Predictions({"label": np.array(["yes", "yes"], dtype=object)}, outputs, 2)
    found = compare(a, b)
    assert np.isnan(found.diffs).all()
    assert found.flips is not None and found.flips.tolist() == [False, True]


def test_top_k_lists_differ_by_the_share_of_items_missing_and_flip_on_the_first() -> None:
    outputs = (Output("items", "topk_items", "int64", shape=(4,)),)
    a = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    b = np.array([[2, 1, 3, 9], [5, 6, 7, 8]])
    found = compare(Predictions({"items": a}, outputs, 2), Predictions({"items": b}, outputs, 2))
    np.testing.assert_allclose(found.diffs, [0.25, 0.0])
    assert found.flips is not None and found.flips.tolist() == [True, False]


def test_predictions_of_other_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="compared 2 champion predictions with 3"):
        compare(binary([0.1, 0.2]), binary([0.1, 0.2, 0.3]))


def test_five_percent_flipped_is_measured_as_five_percent() -> None:
    rng = np.random.default_rng(0)
    champion = rng.uniform(size=20_000)
    challenger = champion.copy()
    flipped = rng.choice(champion.size, size=1000, replace=False)
    challenger[flipped] = 1 - champion[flipped]  # the other side of 0.5, unless it was exactly on it
    stats = RolloutStats()
    for part in np.array_split(np.arange(champion.size), 7):  # as a worker counts: batch by batch
        stats.add_comparison(compare(binary(champion[part].tolist()), binary(challenger[part].tolist())))
    assert stats.compared == stats.decided == 20_000
    assert abs(stats.summary()["label_flip_rate"] - 0.05) <= 0.01


def test_stats_merge_across_workers_and_survive_json() -> None:
    one, two = RolloutStats(), RolloutStats()
    one.champion.requests, one.challenger.requests, one.challenger.errors = 10, 10, 1
    one.champion.latency.add_many([0.001] * 10)
    one.challenger.latency.add_many([0.002] * 10)
    one.add_comparison(Comparison(np.array([0.0, 0.5]), np.array([False, True])))
    two.champion.requests, two.challenger.requests, two.dropped = 5, 5, 3
    two.add_comparison(Comparison(np.array([np.nan]), None))
    total = RolloutStats.total([RolloutStats.from_dict(json.loads(json.dumps(s.to_dict()))) for s in (one, two)])
    summary = total.summary()
    assert (summary["champion"]["requests"], summary["challenger"]["requests"]) == (15, 15)
    assert summary["challenger"]["error_rate"] == pytest.approx(1 / 15)
    assert (summary["compared"], summary["dropped"], summary["label_flip_rate"]) == (3, 3, 0.5)
    assert summary["p99_ratio"] == pytest.approx(2.0, rel=0.03)
