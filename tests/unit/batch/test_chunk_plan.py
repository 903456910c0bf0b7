"""A chunk read where it is scored is the same rows as the chunk the job's own reader cuts.

The Ray engine sends chunk references planned from Parquet footers; resume and the part
names rely on chunk N being the same rows either way. Hypothesis draws the files: how
many, their rows, their row groups, empty ones, and the chunk size.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foretell.batch.sources import open_source
from foretell.errors import InvalidInput


@settings(max_examples=40, deadline=None)
@given(
    files=st.lists(st.tuples(st.integers(0, 700), st.integers(1, 300)), min_size=1, max_size=4),
    chunk_rows=st.integers(1, 800),
)
def test_planned_chunks_read_in_place_are_the_chunks_the_reader_cuts(
    files: list[tuple[int, int]], chunk_rows: int
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        for index, (rows, group) in enumerate(files):
            ids = [f"{index}-{i}" for i in range(rows)]
            table = pa.table({"id": pa.array(ids, pa.string()), "x": np.arange(rows, dtype=np.float64)})
            pq.write_table(table, Path(scratch) / f"part-{index}.parquet", row_group_size=group)
        source = open_source(scratch)
        cut = list(source.chunks(chunk_rows))
        planned = source.plan(chunk_rows)
        assert [number for number, _ in cut] == [ref.number for ref in planned]
        for (_, batch), ref in zip(cut, planned, strict=True):
            assert ref.rows == batch.num_rows
            assert source.read(ref).equals(batch)


def test_only_parquet_can_be_planned(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("id,x\na,1\n")
    with pytest.raises(InvalidInput, match="Parquet"):
        open_source(tmp_path / "rows.csv").plan(10)
