"""Committing a part: a reader sees all of it or none of it; and what the part files and the rejects file hold.

"While the part is being written" is observed from inside the write: a JSON-lines part
calls `str()` on values JSON cannot hold, so a column of an Arrow extension type whose
values are `Peek`s runs the test's own look at the folder at that moment.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from foretell.batch.scoring import ScoringSpec, score_chunk
from foretell.batch.sinks import TEMP_PREFIX, combine, commit_table, part_name, sweep_temp
from foretell.registry import ModelSource
from foretell.testing.models import SumModel, model_of, sum_signature

# -- looking into the folder in the middle of a write ---------------------------------------------------------


class Peek:
    """A value whose `str()` (called by the JSON-lines writer mid-write) runs `look`."""

    def __init__(self, look: Any) -> None:
        self.look = look

    def __str__(self) -> str:
        self.look()
        return "peeked"


class PeekScalar(pa.ExtensionScalar):
    def as_py(self, **kwargs: Any) -> Any:
        return Peek(PeekType.looks[self.value.as_py()])


class PeekType(pa.ExtensionType):
    looks: list[Any] = []  # noqa: RUF012 - the type is rebuilt by Arrow; what to run lives on the class

    def __init__(self) -> None:
        super().__init__(pa.int64(), "foretell.tests.peek")

    def __arrow_ext_serialize__(self) -> bytes:
        return b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: pa.DataType, serialized: bytes) -> PeekType:
        return cls()

    def __arrow_ext_scalar_class__(self) -> type:
        return PeekScalar


def peeking(look: Any, rows: int = 1) -> pa.Table:
    PeekType.looks = [look]
    peek = pa.ExtensionArray.from_storage(PeekType(), pa.array([0] * rows, pa.int64()))
    return pa.table({"id": list(range(rows)), "peek": peek})


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- the commit ---------------------------------------------------------------------------------------------------


def test_a_part_is_written_under_a_temp_name_in_its_folder_and_appears_only_when_whole(tmp_path):
    seen: list[list[str]] = []
    final = commit_table(peeking(lambda: seen.append(listing(tmp_path))), tmp_path, "part-000003.jsonl", "jsonl")
    [during] = seen
    assert len(during) == 1 and during[0].startswith(TEMP_PREFIX) and during[0].endswith("-part-000003.jsonl")
    assert final == tmp_path / "part-000003.jsonl"
    assert listing(tmp_path) == ["part-000003.jsonl"]
    assert final.read_text() == '{"id":0,"peek":"peeked"}\n'


def test_rewriting_a_part_leaves_the_old_one_whole_until_the_new_one_replaces_it(tmp_path):
    old = commit_table(pa.table({"id": [1, 2, 3]}), tmp_path, "part-000000.jsonl", "jsonl")
    before = old.read_bytes()
    seen: list[bytes] = []
    commit_table(peeking(lambda: seen.append(old.read_bytes())), tmp_path, "part-000000.jsonl", "jsonl")
    assert seen == [before]  # mid-write, a reader of the part still reads the old one, all of it
    assert old.read_text() == '{"id":0,"peek":"peeked"}\n'


def test_a_reader_holding_the_old_part_keeps_reading_it_after_the_replace(tmp_path):
    path = commit_table(pa.table({"x": np.arange(1000)}), tmp_path, "part-000000.parquet")
    with path.open("rb") as reader:
        commit_table(pa.table({"x": np.arange(5)}), tmp_path, "part-000000.parquet")
        assert pq.read_table(reader).num_rows == 1000  # a rename, never an overwrite in place
    assert pq.read_table(path).num_rows == 5


def test_a_write_that_fails_leaves_no_part_and_no_temp_file_and_the_old_part_untouched(tmp_path):
    commit_table(pa.table({"id": [1]}), tmp_path, "part-000001.jsonl", "jsonl")

    def fail() -> None:
        raise OSError("disk full")

    for name in ("part-000001.jsonl", "part-000002.jsonl"):  # a part written before, and a new one
        with pytest.raises(TypeError, match="not JSON serializable"):  # how the JSON writer reports the failure
            commit_table(peeking(fail), tmp_path, name, "jsonl")
    assert listing(tmp_path) == ["part-000001.jsonl"]
    assert (tmp_path / "part-000001.jsonl").read_text() == '{"id":1}\n'


def test_commit_makes_the_folder_it_writes_to(tmp_path):
    path = commit_table(pa.table({"id": [1]}), tmp_path / "a" / "b", "part-000000.parquet")
    assert pq.read_table(path).to_pydict() == {"id": [1]}


@given(st.integers(0, 999_999), st.sampled_from(["parquet", "csv", "jsonl"]))
def test_a_part_name_is_fixed_by_its_chunk_number_and_sorts_in_chunk_order(number, fmt):
    name = part_name(number, fmt)
    assert name == f"part-{number:06d}.{fmt}"
    assert (name < part_name(number + 1, fmt)) or number + 1 > 999_999


# -- what a part holds ----------------------------------------------------------------------------------------------


def scored() -> pa.Table:
    return pa.table(
        {
            "id": [f"C-{i}" for i in range(4)],
            "label": ["yes", "no", "yes", "yes"],
            "score": [0.25, 0.5, 0.75, 1.0],
            "proba": pa.array([[0.75, 0.25], [0.5, 0.5], [0.25, 0.75], [0.0, 1.0]], pa.list_(pa.float64())),
        }
    )


def test_a_parquet_part_round_trips_and_dictionary_encodes_only_repeating_non_float_columns(tmp_path):
    path = commit_table(scored(), tmp_path, "part-000000.parquet", unique=("id",))
    assert pq.read_table(path).equals(scored())
    group = pq.ParquetFile(path).metadata.row_group(0)
    dictionary = {
        group.column(i).path_in_schema: any("DICTIONARY" in e for e in group.column(i).encodings)
        for i in range(group.num_columns)
    }
    assert dictionary == {"id": False, "label": True, "score": False, "proba.list.element": False}


def test_a_csv_part_has_one_header_and_list_columns_as_json_text(tmp_path):
    path = commit_table(scored(), tmp_path, "part-000000.csv", "csv")
    table = pacsv.read_csv(path)
    assert table.column_names == ["id", "label", "score", "proba"]
    assert [json.loads(v) for v in table.column("proba").to_pylist()] == scored().column("proba").to_pylist()


def test_a_jsonl_part_is_one_object_per_row(tmp_path):
    path = commit_table(scored(), tmp_path, "part-000000.jsonl", "jsonl")
    assert [json.loads(line) for line in path.read_text().splitlines()] == scored().to_pylist()


# -- temp files a killed run left behind --------------------------------------------------------------------------


def test_sweep_deletes_every_orphaned_temp_file_below_the_folder_and_nothing_else(tmp_path):
    for relative in (".tmp-abc-part-000001.parquet", "_foretell/parts/.tmp-def-part-000002.parquet"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"half a part")
    kept = ["part-000000.parquet", "_foretell/parts/part-000003.parquet", "_foretell/journal.jsonl"]
    for relative in kept:
        (tmp_path / relative).write_bytes(b"whole")
    assert sweep_temp(tmp_path) == 2
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == sorted(kept)
    assert sweep_temp(tmp_path) == 0
    assert sweep_temp(tmp_path / "missing") == 0


# -- one file from the parts --------------------------------------------------------------------------------------


def test_combining_csv_parts_keeps_one_header(tmp_path):
    parts = [
        commit_table(pa.table({"id": [i], "score": [i / 2]}), tmp_path / "parts", part_name(i, "csv"), "csv")
        for i in range(3)
    ]
    target = combine(parts, tmp_path / "out.csv", "csv")
    assert target.read_text().splitlines() == ['"id","score"', "0,0", "1,0.5", "2,1"]
    assert listing(tmp_path) == ["out.csv", "parts"]


def test_combining_parquet_parts_keeps_every_row_in_part_order(tmp_path):
    parts = [
        commit_table(pa.table({"id": [2 * i, 2 * i + 1]}), tmp_path / "parts", part_name(i, "parquet"))
        for i in range(3)
    ]
    assert pq.read_table(combine(parts, tmp_path / "out.parquet", "parquet")).column("id").to_pylist() == list(range(6))


def test_combining_no_parts_fails_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="no parts to combine"):
        combine([], tmp_path / "out.parquet", "parquet")
    assert listing(tmp_path) == []


# -- the rejects file ------------------------------------------------------------------------------------------------


def test_refused_rows_go_to_a_rejects_part_with_their_id_raw_values_and_reasons(tmp_path):
    model = model_of(SumModel(["a", "b"]), sum_signature(["a", "b"]), "sums")
    spec = ScoringSpec(
        model=ModelSource(model.info, tmp_path),  # score_chunk is handed the loaded model itself
        id_column="id",
        passthrough=(),
        staged=str(tmp_path / "parts"),
        staged_rejects=str(tmp_path / "rejects"),
        output_format="parquet",
        predicted_at="2030-01-01T00:00:00+00:00",
        threads=1,
    )
    chunk = pa.RecordBatch.from_pydict(
        {"id": ["C-0", "C-1", "C-2", "C-3"], "a": [1.0, None, 3.0, 4.0], "b": [1.0, 2.0, None, 4.0]}
    )
    record = score_chunk(model, spec, 7, chunk)
    assert (record.chunk, record.rows, record.scored, record.rejected) == (7, 4, 2, 2)
    assert (record.part, record.reject_part) == ("part-000007.parquet", "part-000007.parquet")
    part = pq.read_table(tmp_path / "parts" / "part-000007.parquet")
    assert part.select(["id", "score", "model_version"]).to_pydict() == {
        "id": ["C-0", "C-3"],
        "score": [2.0, 8.0],
        "model_version": [1, 1],
    }
    rejects = pq.read_table(tmp_path / "rejects" / "part-000007.parquet").to_pylist()
    assert [(r["id"], r["chunk"], r["row_in_chunk"]) for r in rejects] == [("C-1", 7, 1), ("C-2", 7, 2)]
    assert [json.loads(r["values"]) for r in rejects] == [
        {"id": "C-1", "a": None, "b": 2.0},
        {"id": "C-2", "a": 3.0, "b": None},
    ]
    assert rejects[0]["reason"].startswith("row 1, field 'a': expected a float64 value, not a missing one")
    assert rejects[1]["reason"].startswith("row 2, field 'b': expected a float64 value, not a missing one")
    assert not any(name.startswith(TEMP_PREFIX) for name in os.listdir(tmp_path / "rejects"))


def test_a_chunk_with_no_refused_rows_writes_no_rejects_file(tmp_path):
    model = model_of(SumModel(["a"]), sum_signature(["a"]), "sums")
    spec = ScoringSpec(
        ModelSource(model.info, tmp_path),
        "id",
        (),
        str(tmp_path / "p"),
        str(tmp_path / "r"),
        "csv",
        "2030-01-01T00:00:00+00:00",
        1,
    )
    record = score_chunk(model, spec, 0, pa.RecordBatch.from_pydict({"id": [1, 2], "a": [0.5, 1.5]}))
    assert (record.part, record.reject_part, record.rejected) == ("part-000000.csv", None, 0)
    assert not (tmp_path / "r").exists()
