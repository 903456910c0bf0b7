"""Quality once labels exist: per version × source, how good the predictions that labels reached were.

The rows are the session's `labelled` view (predictions joined with their labels point in
time, as `foretell ledger export` joins them); DuckDB picks the labelled ones and numpy
computes the figures. They are scikit-learn's own definitions, written out so the monitor
does not need scikit-learn at run time, and checked against it in the tests:

- AUC from average ranks (the Mann-Whitney statistic), which is what `roc_auc_score`'s
  trapezoids give when scores tie;
- log loss with `log_loss`'s clipping of probabilities to [eps, 1 - eps] (float64's eps);
- Brier score; a 10-bin calibration table binned as `calibration_curve(strategy="uniform")`;
- accuracy at the model's threshold: a binary classifier says its second class when the
  score is above 0.5 (`predict` is the argmax of `predict_proba`, so 0.5 itself is the first);
- for a recommender, hit rate@k: a label is the item the user later interacted with, and a
  hit when it was among the k items shown.
"""

# ruff: noqa: S608 - SQL names go through sql.ident

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from foretell.monitor.sql import fields, ident

if TYPE_CHECKING:
    from foretell.core.schema import Signature
    from foretell.ledger.session import LedgerSession

__all__ = [
    "CalibrationBin",
    "QualityCell",
    "QualitySection",
    "Task",
    "accuracy",
    "brier_score",
    "calibration_table",
    "log_loss",
    "quality_section",
    "roc_auc",
    "task_of",
]

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

CALIBRATION_BINS = 10
_EPS = float(np.finfo(np.float64).eps)


# -- the figures -------------------------------------------------------------------------------


def roc_auc(y: Bools, p: Floats) -> float | None:
    """The area under the ROC curve, ties counted half; None when only one class is present."""
    positives = int(np.count_nonzero(y))
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return None
    _, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    # Average 1-based rank of each distinct score: the ranks it spans, first to last, halved.
    last = np.cumsum(counts).astype(np.float64)
    average = last - (counts - 1) / 2.0
    rank_sum = float(np.sum(average[inverse][y]))
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def log_loss(y: Bools, p: Floats) -> float:
    """Mean cross-entropy, with each class's probability clipped to [eps, 1 - eps] as scikit-learn does."""
    positive = np.clip(p, _EPS, 1 - _EPS)
    negative = np.clip(1.0 - p, _EPS, 1 - _EPS)
    return float(-np.mean(np.where(y, np.log(positive), np.log(negative))))


def brier_score(y: Bools, p: Floats) -> float:
    return float(np.mean((p - y.astype(np.float64)) ** 2))


def accuracy(y: Bools, p: Floats, threshold: float) -> float:
    return float(np.mean((p > threshold) == y))


@dataclass(frozen=True)
class CalibrationBin:
    lower: float
    upper: float
    count: int
    mean_predicted: float | None  # None: no prediction fell in this bin
    observed_rate: float | None


def calibration_table(y: Bools, p: Floats, bins: int = CALIBRATION_BINS) -> tuple[CalibrationBin, ...]:
    """Equal-width bins over [0, 1]: how many predictions, their mean, and how often the label was positive."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    ids = np.searchsorted(edges[1:-1], np.clip(p, 0.0, 1.0))
    count = np.bincount(ids, minlength=bins)
    predicted = np.bincount(ids, weights=p, minlength=bins)
    observed = np.bincount(ids, weights=y.astype(np.float64), minlength=bins)
    return tuple(
        CalibrationBin(
            float(edges[i]),
            float(edges[i + 1]),
            int(count[i]),
            float(predicted[i] / count[i]) if count[i] else None,
            float(observed[i] / count[i]) if count[i] else None,
        )
        for i in range(bins)
    )


# -- what is measured for which model ----------------------------------------------------------

TaskKind = Literal["binary", "regression", "recommender", "none"]


@dataclass(frozen=True)
class Task:
    """What quality means for a model: which output is its prediction and what a label is compared with."""

    kind: TaskKind
    output: str | None = None  # the `outputs` field: the score, or the top-k items
    positive: Any = None  # binary: the class a label must equal to count as positive
    threshold: float | None = None  # binary: the score above which the model says `positive`


def task_of(signature: Signature | None) -> Task:
    """A binary classifier's score, a regressor's value, a recommender's top-k items, or nothing to measure."""
    if signature is None:
        return Task("none")
    kinds = {o.kind: o for o in signature.outputs}
    if "topk_items" in kinds:
        return Task("recommender", kinds["topk_items"].name)
    proba = kinds.get("proba")
    if "score" in kinds and proba is not None and proba.classes is not None and len(proba.classes) == 2:
        return Task("binary", kinds["score"].name, positive=proba.classes[1], threshold=0.5)
    if "score" in kinds and proba is None:
        return Task("regression", kinds["score"].name)
    return Task("none")


# -- the section -------------------------------------------------------------------------------


@dataclass(frozen=True)
class QualityCell:
    """One version × source: its predictions in the window, the labelled ones, and their figures."""

    version: int | None
    source: str
    count: int
    labelled: int
    positives: int | None = None
    auc: float | None = None
    log_loss: float | None = None
    brier: float | None = None
    accuracy: float | None = None
    calibration: tuple[CalibrationBin, ...] = ()
    mae: float | None = None
    rmse: float | None = None
    hits: int | None = None
    k: int | None = None
    hit_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"calibration": [asdict(b) for b in self.calibration]}


@dataclass(frozen=True)
class QualitySection:
    task: Task
    labels: int  # labelled predictions in the window, all cells together
    cells: tuple[QualityCell, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task.kind,
            "output": self.task.output,
            "positive": self.task.positive,
            "threshold": self.task.threshold,
            "labelled": self.labels,
            "cells": [c.to_dict() for c in self.cells],
        }


def quality_section(session: LedgerSession, task: Task) -> QualitySection:
    """Figures per version × source from the session's `labelled` view (every cell counted, even unlabelled)."""
    counts = {
        (version, str(source)): int(n)
        for version, source, n in session.rows(
            "SELECT version, source, count(*) FROM predictions WHERE status = 'ok' GROUP BY ALL"
        )
    }
    output = task.output
    if task.kind == "none" or output is None or output not in fields(session, "labelled", "outputs"):
        unmeasured = tuple(QualityCell(v, s, n, 0) for (v, s), n in sorted(counts.items(), key=_order))
        return QualitySection(task, 0, unmeasured)
    measured = _recommender(session, output) if task.kind == "recommender" else _scored(session, task, output)
    cells = []
    for cell_key, n in sorted(counts.items(), key=_order):
        cell = measured.get(cell_key)
        cells.append(QualityCell(cell_key[0], cell_key[1], n, 0) if cell is None else _with_count(cell, n))
    return QualitySection(task, sum(c.labelled for c in cells), tuple(cells))


def _order(item: tuple[tuple[int | None, str], int]) -> tuple[int, str]:
    (version, source), _ = item
    return (-1 if version is None else version, source)


def _with_count(cell: QualityCell, count: int) -> QualityCell:
    return QualityCell(**{**cell.__dict__, "count": count})


def _scored(session: LedgerSession, task: Task, output: str) -> dict[tuple[int | None, str], QualityCell]:
    score = f"CAST(outputs.{ident(output)} AS DOUBLE)"
    table = session.arrow(
        f"SELECT version, source, {score} AS score, label, label_value FROM labelled "
        f"WHERE status = 'ok' AND label_id IS NOT NULL AND isfinite({score})"
    )
    if table.num_rows == 0:
        return {}
    versions = table.column("version").to_pylist()
    sources = table.column("source").to_pylist()
    scores = table.column("score").to_numpy(zero_copy_only=False).astype(np.float64)
    values = table.column("label_value").to_numpy(zero_copy_only=False).astype(np.float64)
    texts = table.column("label").to_pylist()
    cells = {}
    for (version, source), rows in _groups(versions, sources).items():
        p = scores[rows]
        if task.kind == "binary":
            y = _positive(values[rows], [texts[i] for i in rows], task.positive)
            cells[(version, source)] = _binary_cell(version, source, y, p, task.threshold or 0.5)
        else:
            known = values[rows]
            kept = np.isfinite(known)
            error = p[kept] - known[kept]
            cells[(version, source)] = QualityCell(
                version,
                source,
                0,
                int(kept.sum()),
                mae=float(np.mean(np.abs(error))) if kept.any() else None,
                rmse=float(np.sqrt(np.mean(error**2))) if kept.any() else None,
            )
    return cells


def _binary_cell(version: int | None, source: str, y: Bools, p: Floats, threshold: float) -> QualityCell:
    return QualityCell(
        version,
        source,
        0,
        len(y),
        positives=int(np.count_nonzero(y)),
        auc=roc_auc(y, p),
        log_loss=log_loss(y, p),
        brier=brier_score(y, p),
        accuracy=accuracy(y, p, threshold),
        calibration=calibration_table(y, p),
    )


def _positive(values: Floats, texts: Sequence[Any], positive: Any) -> Bools:
    """Whether each label is the positive class: by its number when the class is one, else by its text."""
    if isinstance(positive, bool | int | float):
        return np.asarray(values == float(positive))
    return np.asarray([t == str(positive) for t in texts], dtype=bool)


Cell = tuple[int | None, str]


def _groups(versions: Sequence[int | None], sources: Sequence[str]) -> dict[Cell, npt.NDArray[np.intp]]:
    """Row positions per (version, source)."""
    groups: dict[Cell, list[int]] = {}
    for i, cell in enumerate(zip(versions, sources, strict=True)):
        groups.setdefault(cell, []).append(i)
    return {cell: np.asarray(rows, dtype=np.intp) for cell, rows in groups.items()}


def _recommender(session: LedgerSession, output: str) -> dict[tuple[int | None, str], QualityCell]:
    items = f"outputs.{ident(output)}"
    item = "coalesce(TRY_CAST(label_value AS BIGINT), TRY_CAST(label AS BIGINT))"
    rows = session.rows(
        f"SELECT version, source, count(*), count_if(list_contains({items}, {item})), max(len({items})) "
        f"FROM labelled WHERE status = 'ok' AND label_id IS NOT NULL AND {items} IS NOT NULL GROUP BY ALL"
    )
    return {
        (version, str(source)): QualityCell(
            version, str(source), 0, int(n), hits=int(hits), k=int(k or 0), hit_rate=int(hits) / int(n)
        )
        for version, source, n, hits, k in rows
    }
