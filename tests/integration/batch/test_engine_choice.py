"""The local engine scores a compiled predictor on threads and any other on worker processes.

Both ways run here for real on the same chunks: the compiled one (the linear model's ONNX
graph, built at registration) must not start a process, the original must, and their
part files must hold the same rows and the same scores.
"""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from batchkit import make_rows

import foretell
from foretell.batch.engines import Chunks, LocalEngine
from foretell.batch.scoring import ScoringSpec
from foretell.batch.sources import open_source
from foretell.core.model import PredictorChoice
from foretell.registry import model_source, open_registry


def spec_for(home: Path, out: Path, predictor: PredictorChoice) -> ScoringSpec:
    return ScoringSpec(
        model=model_source(open_registry(home), "models:/linear/1", predictor=predictor),
        id_column="id",
        passthrough=("segment",),
        staged=str(out / "parts"),
        staged_rejects=str(out / "rejects"),
        output_format="parquet",
        predicted_at="2026-11-29T00:00:00+00:00",
        threads=1,
    )


def scored(home: Path, out: Path, predictor: PredictorChoice) -> tuple[list[int], set[str], list[int]]:
    path = out.parent / f"rows-{predictor}.parquet"
    pq.write_table(make_rows(4_000, seed=9, bad_every=7), path)
    chunks = Chunks(open_source(path), chunk_rows=500)
    threads: set[str] = set()
    children: list[int] = []
    numbers = []
    for record in LocalEngine(workers=2).run(spec_for(home, out, predictor), chunks):
        numbers.append(record.chunk)
        threads |= {t.name.split("_")[0] for t in threading.enumerate()}
        children.append(len(multiprocessing.active_children()))
    return sorted(numbers), threads, children


def test_a_compiled_predictor_scores_on_threads_and_the_original_on_processes(home: Path, tmp_path: Path) -> None:
    info = foretell.show("linear/1", home=home)
    assert info.compiled is not None and info.compiled["status"] == "passed", info.compiled

    numbers, threads, children = scored(home, tmp_path / "compiled", "auto")
    assert numbers == list(range(8))
    assert "foretell-score" in threads
    assert max(children) == 0, "a compiled predictor started worker processes"

    numbers, threads, children = scored(home, tmp_path / "original", "original")
    assert numbers == list(range(8))
    assert "foretell-score" not in threads
    assert max(children) >= 2

    compiled = pq.read_table(tmp_path / "compiled" / "parts").sort_by("id")
    original = pq.read_table(tmp_path / "original" / "parts").sort_by("id")
    assert compiled.column("id").to_pylist() == original.column("id").to_pylist()
    assert compiled.num_rows == 4_000 - len(range(0, 4_000, 7))  # the rows with a missing b were refused
    np.testing.assert_allclose(compiled.column("score"), original.column("score"), rtol=0, atol=1e-9)
    assert len(list((tmp_path / "compiled" / "rejects").iterdir())) == 8
