"""`foretell.formats`: one meaning per suffix, for every command that reads rows from a file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from foretell import formats
from foretell.batch.sources import open_source
from foretell.errors import InvalidInput

ROWS = [{"customer_id": "C-1", "zip": "02139", "spend": 1.5}, {"customer_id": "C-2", "zip": "10001", "spend": None}]


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.parquet", "parquet"),
        ("a.PQ", "parquet"),
        ("a.csv", "csv"),
        ("a.json", "json"),
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
    ],
)
def test_each_suffix_has_one_format(name, fmt):
    assert formats.format_of(name) == fmt


def test_an_unknown_suffix_is_refused_naming_the_known_ones_and_the_flag():
    with pytest.raises(InvalidInput, match=r"cannot tell the format of rows\.txt.*\.jsonl.*--format"):
        formats.format_of("data/rows.txt")


def test_a_json_file_is_one_document_an_object_or_a_list(tmp_path):
    (tmp_path / "one.json").write_text(json.dumps(ROWS[0], indent=2))
    (tmp_path / "many.json").write_text(json.dumps(ROWS))
    assert formats.read_file(tmp_path / "one.json") == [ROWS[0]]
    assert formats.read_file(tmp_path / "many.json") == ROWS


def test_a_json_file_holding_json_lines_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text("\n".join(json.dumps(row) for row in ROWS))
    with pytest.raises(InvalidInput, match=r"rows\.json holds JSON Lines .* name it \.jsonl, or pass --format jsonl"):
        formats.read_file(path)
    assert formats.read_file(path, "jsonl") == ROWS


def test_json_lines_skip_blank_lines_and_name_the_bad_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n")
    assert formats.read_file(path) == ROWS
    path.write_text(json.dumps(ROWS[0]) + "\n{oops\n")
    with pytest.raises(InvalidInput, match=r"rows\.jsonl line 2 is not valid JSON"):
        formats.read_file(path)


def test_bare_nan_as_pandas_writes_it_is_read(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text('[{"spend": NaN, "zip": "02139"}]')
    (row,) = formats.read_file(path)
    assert math.isnan(row["spend"]) and row["zip"] == "02139"


def test_a_row_that_is_not_an_object_is_refused_by_position():
    with pytest.raises(InvalidInput, match=r"input\.json: row 1 is list, expected a JSON object of features"):
        formats.json_document_rows(b'[{"a": 1}, [1, 2]]', "input.json")


def test_csv_columns_typed_by_the_features_keep_leading_zeros():
    data = b"customer_id,zip,spend\nC-1,02139,1.5\n"
    guessed = formats.read_csv(data, "rows.csv")
    typed = formats.read_csv(data, "rows.csv", formats.csv_column_types({"zip": "string", "spend": "float64"}))
    assert guessed.column("zip").to_pylist() == [2139]
    assert typed.column("zip").to_pylist() == ["02139"]


def test_csv_that_arrow_cannot_read_is_invalid_input_with_the_cause():
    with pytest.raises(InvalidInput, match=r"rows\.csv is not valid CSV") as caught:
        formats.read_csv(b"a,b\n1,2,3\n", "rows.csv")
    assert isinstance(caught.value.__cause__, pa.ArrowInvalid)


def test_a_folder_and_a_missing_file_are_refused(tmp_path):
    with pytest.raises(InvalidInput, match="is a folder"):
        formats.read_file(tmp_path)
    with pytest.raises(InvalidInput, match="does not exist"):
        formats.read_file(tmp_path / "nope.json")


rows_strategy = st.lists(
    st.dictionaries(
        st.text(min_size=1, max_size=5),
        st.one_of(st.none(), st.booleans(), st.integers(-(2**31), 2**31), st.text(max_size=5)),
        min_size=1,
        max_size=4,
    ),
    min_size=2,
    max_size=5,
)


@given(rows_strategy)
def test_standard_input_is_told_apart_by_its_shape(rows):
    document = json.dumps(rows, indent=1).encode()
    lines = "\n".join(json.dumps(row) for row in rows).encode()
    assert formats.sniff(document) == "json"
    assert formats.sniff(lines) == "jsonl"
    assert formats.read_rows(document, formats.sniff(document), "stdin") == rows
    assert formats.read_rows(lines, formats.sniff(lines), "stdin") == rows
    assert formats.sniff(b"a,b\n1,2\n") == "csv"


def test_a_batch_job_reads_a_json_document_and_cuts_it_into_chunks(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([{"id": i, "x": i / 2} for i in range(10)]))
    source = open_source(path)
    assert source.format == "json" and source.columns == ["id", "x"]
    chunks = list(source.chunks(4))
    assert [n for n, _ in chunks] == [0, 1, 2]
    assert [b.num_rows for _, b in chunks] == [4, 4, 2]
    assert pa.Table.from_batches([b for _, b in chunks]).column("id").to_pylist() == list(range(10))


def test_a_batch_job_refuses_a_json_file_of_json_lines_before_any_work(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text("\n".join(json.dumps({"id": i}) for i in range(3)))
    with pytest.raises(InvalidInput, match="holds JSON Lines"):
        open_source(path)
    assert [b.num_rows for _, b in open_source(path, "jsonl").chunks(10)] == [3]


def test_a_registration_sample_may_be_json_lines(tmp_path: Path):
    from foretell.adapters.outputs import classifier_outputs
    from foretell.core.schema import Feature, Signature
    from foretell.registry.sample import signature_with_sample

    path = tmp_path / "sample.jsonl"
    path.write_text("\n".join(json.dumps({"zip": z, "spend": s}) for z, s in [("02139", 1.0), ("10001", 2.5)]))
    described = Signature((Feature("f0"), Feature("f1")), classifier_outputs([0, 1]))  # a model that kept no names
    signature = signature_with_sample(described, path)
    assert signature.input_names == ["zip", "spend"]
    assert [f.dtype for f in signature.inputs] == ["string", "float64"]
    pq.write_table(pa.table({"zip": ["1"], "spend": [1.0]}), tmp_path / "sample.parquet")
    assert signature_with_sample(described, tmp_path / "sample.parquet").input_names == ["zip", "spend"]
