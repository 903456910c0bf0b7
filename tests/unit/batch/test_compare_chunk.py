"""One chunk scored by a champion and a challenger: the columns beside each other, the rejects, the chunk's figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from foretell.batch.manifest import ChunkRecord
from foretell.batch.scoring import ScoringSpec, score_chunk
from foretell.core.feature import Feature
from foretell.core.frame import Array, Frame
from foretell.core.model import Model
from foretell.core.predictor import PredictOptions
from foretell.core.schema import Output, Signature
from foretell.registry import ModelSource
from foretell.rollout import RolloutStats
from foretell.testing.models import SumModel, model_of, sum_signature


class ThresholdModel:
    """score = a + b; label = 1 when the score is above the threshold: two versions differ only by it."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def predict(self, frame: Frame, options: PredictOptions) -> dict[str, Array]:
        score = frame["a"].astype(np.float64) + frame["b"].astype(np.float64)
        return {"score": score, "label": (score > self.threshold).astype(np.int64)}


THRESHOLD_SIGNATURE = Signature(
    (Feature("a"), Feature("b")), (Output("score", "score"), Output("label", "label", dtype="int64"))
)


def spec_for(tmp_path: Path, model: Model, challenger: Model) -> ScoringSpec:
    return ScoringSpec(
        model=ModelSource(model.info, tmp_path),  # score_chunk is handed the loaded models themselves
        id_column="id",
        passthrough=(),
        staged=str(tmp_path / "parts"),
        staged_rejects=str(tmp_path / "rejects"),
        output_format="parquet",
        predicted_at="2030-01-01T00:00:00+00:00",
        threads=1,
        challenger=ModelSource(challenger.info, tmp_path),
    )


def scored(tmp_path: Path, champion: Model, challenger: Model, chunk: pa.RecordBatch) -> tuple[ChunkRecord, pa.Table]:
    record = score_chunk(champion, spec_for(tmp_path, champion, challenger), 3, chunk, challenger)
    assert record.part is not None
    return record, pq.read_table(tmp_path / "parts" / record.part)


def test_an_identical_challenger_differs_by_nothing(tmp_path):
    model = model_of(SumModel(["a", "b"]), sum_signature(["a", "b"]), "sums")
    chunk = pa.RecordBatch.from_pydict({"id": ["C-0", "C-1", "C-2"], "a": [1.0, 2.0, 3.0], "b": [0.5, 0.0, -1.0]})
    record, part = scored(tmp_path, model, model, chunk)
    assert part.column_names == [
        "id",
        "score",
        "model_version",
        "predicted_at",
        "challenger_score",
        "score_diff",
        "label_flipped",
    ]
    assert part.column("challenger_score").to_pylist() == part.column("score").to_pylist() == [1.5, 2.0, 2.0]
    assert part.column("score_diff").to_pylist() == [0.0, 0.0, 0.0]
    assert part.column("label_flipped").null_count == 3  # a sum makes no decision
    assert record.compare is not None
    stats = RolloutStats.from_dict(record.compare)
    assert (stats.champion.requests, stats.challenger.requests, stats.compared) == (3, 3, 3)
    assert (stats.champion.errors, stats.challenger.errors) == (0, 0)
    assert stats.diffs.quantile(0.99) == 0.0
    assert stats.champion.latency.count == stats.challenger.latency.count == 1  # one chunk, timed per model


def test_a_challenger_that_moves_the_threshold_flips_the_rows_between(tmp_path):
    champion = model_of(ThresholdModel(0.0), THRESHOLD_SIGNATURE, "gate")
    challenger = model_of(ThresholdModel(1.0), THRESHOLD_SIGNATURE, "gate")
    chunk = pa.RecordBatch.from_pydict({"id": ["A", "B", "C", "D"], "a": [-1.0, 0.25, 0.5, 3.0], "b": [0.0] * 4})
    record, part = scored(tmp_path, champion, challenger, chunk)
    assert part.column("label").to_pylist() == [0, 1, 1, 1]
    assert part.column("challenger_label").to_pylist() == [0, 0, 0, 1]
    assert part.column("label_flipped").to_pylist() == [False, True, True, False]
    assert part.column("score_diff").to_pylist() == [0.0] * 4  # the scores agree; only the decision moved
    stats = RolloutStats.from_dict(record.compare or {})
    assert (stats.flips, stats.decided, stats.flip_rate) == (2, 4, 0.5)


def test_rows_only_the_challenger_refuses_keep_the_champion_s_prediction_and_go_to_rejects(tmp_path):
    champion = model_of(SumModel(["a", "b"]), sum_signature(["a", "b"], allow_missing=True), "sums")
    challenger = model_of(SumModel(["a", "b"]), sum_signature(["a", "b"]), "sums")
    chunk = pa.RecordBatch.from_pydict(
        {"id": ["C-0", "C-1", "C-2", "C-3"], "a": [1.0, None, 3.0, 4.0], "b": [1.0, 2.0, None, 4.0]}
    )
    record, part = scored(tmp_path, champion, challenger, chunk)
    assert (record.rows, record.scored, record.rejected) == (4, 4, 0)  # the champion's rejects fail a job, not these
    assert part.column("id").to_pylist() == ["C-0", "C-1", "C-2", "C-3"]
    assert part.column("score").to_pylist() == [2.0, 2.0, 3.0, 8.0]
    assert part.column("challenger_score").to_pylist() == [2.0, None, None, 8.0]
    assert part.column("score_diff").to_pylist() == [0.0, None, None, 0.0]
    stats = RolloutStats.from_dict(record.compare or {})
    assert (stats.challenger.errors, stats.champion.errors, stats.compared) == (2, 0, 2)
    assert record.reject_part is not None
    rejects = pq.read_table(tmp_path / "rejects" / record.reject_part).to_pylist()
    assert [r["id"] for r in rejects] == ["C-1", "C-2"]
    assert all(r["reason"].startswith("challenger models:/sums/1: ") for r in rejects)
    assert "field 'a'" in rejects[0]["reason"] and "field 'b'" in rejects[1]["reason"]


def test_rows_only_the_champion_refuses_are_its_errors_and_leave_the_output(tmp_path):
    champion = model_of(SumModel(["a", "b"]), sum_signature(["a", "b"]), "sums")
    challenger = model_of(SumModel(["a", "b"]), sum_signature(["a", "b"], allow_missing=True), "sums")
    chunk = pa.RecordBatch.from_pydict({"id": ["C-0", "C-1", "C-2"], "a": [1.0, None, 3.0], "b": [1.0, 2.0, 0.5]})
    record, part = scored(tmp_path, champion, challenger, chunk)
    assert (record.scored, record.rejected) == (2, 1)
    assert part.column("id").to_pylist() == ["C-0", "C-2"]
    assert part.column("challenger_score").to_pylist() == [2.0, 3.5]
    stats = RolloutStats.from_dict(record.compare or {})
    assert (stats.champion.errors, stats.challenger.errors, stats.compared) == (1, 0, 2)
    rejects = pq.read_table(tmp_path / "rejects" / (record.reject_part or "")).to_pylist()
    assert [r["id"] for r in rejects] == ["C-1"]
    assert not rejects[0]["reason"].startswith("challenger")


def test_the_chunk_figures_survive_the_journal(tmp_path):
    model = model_of(SumModel(["a"]), sum_signature(["a"]), "sums")
    record, _ = scored(tmp_path, model, model, pa.RecordBatch.from_pydict({"id": ["x"], "a": [1.0]}))
    again = ChunkRecord(**record.to_dict())
    assert again == record
    without = ChunkRecord(chunk=0, rows=1, scored=1, rejected=0, part=None, reject_part=None)
    assert "compare" not in without.to_dict()  # a job without a challenger journals what it always did


@pytest.mark.parametrize("n", [0, 1, 1000])
def test_an_all_valid_chunk_needs_no_take(tmp_path, n):
    model = model_of(SumModel(["a"]), sum_signature(["a"]), "sums")
    values = np.arange(n, dtype=np.float64)
    chunk = pa.RecordBatch.from_pydict({"id": [f"r{i}" for i in range(n)], "a": values})
    record = score_chunk(model, spec_for(tmp_path, model, model), 0, chunk, model)
    stats = RolloutStats.from_dict(record.compare or {})
    assert stats.compared == n and stats.challenger.requests == n
