"""Where a batch job's rows come from: a file, a folder, a glob or an fsspec URL, read as a stream.

Rows are read in chunks of at most `chunk_rows`, never whole: Parquet row group by row
group, CSV and JSON Lines through pyarrow datasets (imported only for them: pyarrow's
dataset module imports pandas, a quarter of a second of every job's start). A `.json`
file is one JSON document (`foretell.formats`), read whole and then cut into chunks. Chunk
numbers follow the files in sorted order and the batches within each file, so the same
input read with the same chunk size is cut the same way every time: that is what lets a
resumed job skip exactly the chunks it already committed.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from foretell.errors import InvalidInput
from foretell.formats import SUFFIXES, InputFormat, check_format, json_document_rows, rows_table

__all__ = ["ChunkRef", "InputFormat", "Source", "open_source"]


@dataclass(frozen=True)
class ChunkRef:
    """Where chunk `number` lies: `rows` rows of `file` from its row `first_row` (Parquet only).

    A distributed engine sends these instead of the rows, and each worker reads its own.
    """

    number: int
    file: str
    first_row: int
    rows: int


@dataclass(frozen=True)
class Source:
    """An opened input: its files, format and schema, ready to stream."""

    location: str
    files: tuple[str, ...]
    format: InputFormat
    filesystem: Any
    """A pyarrow filesystem for the files (local ones for plain paths)."""
    schema: pa.Schema
    """The first file's, as a dataset would take it."""

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def count_rows(self) -> int | None:
        """Rows in the input when the format says so cheaply (Parquet footers), else None."""
        if self.format != "parquet":
            return None
        return sum(self._rows_in(path) for path in self.files)

    def require(self, columns: Sequence[str], what: str = "the model") -> None:
        """Fail before any work when the input lacks a column the job needs."""
        missing = [c for c in columns if c not in self.schema.names]
        if missing:
            raise InvalidInput(f"{self.location} lacks column(s) {missing} that {what} needs; it has {self.columns}")

    def chunks(self, chunk_rows: int, columns: Sequence[str] | None = None) -> Iterator[tuple[int, pa.RecordBatch]]:
        """(chunk number, rows) in a fixed order; each chunk holds at most `chunk_rows` rows."""
        number = 0
        for batches in self._files(chunk_rows, list(columns) if columns else None):
            pending: list[pa.RecordBatch] = []
            size = 0
            for batch in batches:
                pending.append(batch)
                size += batch.num_rows
                # Readers may hand out batches smaller than asked (Parquet row groups, CSV blocks):
                # joining them keeps chunks near `chunk_rows`, so workers get work worth sending.
                while size >= chunk_rows:
                    table = pa.Table.from_batches(pending)
                    yield number, _one_batch(table.slice(0, chunk_rows))
                    number += 1
                    rest = table.slice(chunk_rows)
                    pending, size = (rest.to_batches(), rest.num_rows) if rest.num_rows else ([], 0)
            if size:
                yield number, _one_batch(pa.Table.from_batches(pending))
                number += 1

    def plan(self, chunk_rows: int) -> list[ChunkRef]:
        """Every chunk `chunks` would yield, as references, numbered the same way (from the footers)."""
        if self.format != "parquet":
            raise InvalidInput(
                f"{self.location} is {self.format}: chunks can be planned only from Parquet, whose footers "
                "say where each row is (cut the rows with `chunks` instead)"
            )
        refs: list[ChunkRef] = []
        for path in self.files:
            rows = self._rows_in(path)
            refs += [
                ChunkRef(len(refs) + i, path, first, min(chunk_rows, rows - first))
                for i, first in enumerate(range(0, rows, chunk_rows))
            ]
        return refs

    def _rows_in(self, path: str) -> int:
        """A Parquet file's rows, from its footer."""
        import pyarrow.parquet as pq

        with self.filesystem.open_input_file(path) as handle:
            return int(pq.ParquetFile(handle).metadata.num_rows)

    def read(self, ref: ChunkRef, columns: Sequence[str] | None = None) -> pa.RecordBatch:
        """The rows `ref` points to: the same rows, in the same order, as chunk `ref.number` of `chunks`."""
        import pyarrow.parquet as pq

        with self.filesystem.open_input_file(ref.file) as handle:
            reader = pq.ParquetFile(handle, pre_buffer=False)
            metadata = reader.metadata
            groups, group_start, start = [], 0, None
            for index in range(metadata.num_row_groups):
                size = metadata.row_group(index).num_rows
                if group_start + size > ref.first_row and group_start < ref.first_row + ref.rows:
                    groups.append(index)
                    start = group_start if start is None else start
                group_start += size
            table = reader.read_row_groups(groups, columns=list(columns) if columns else None)
        return _one_batch(table.slice(ref.first_row - (start or 0), ref.rows))

    def _files(self, chunk_rows: int, columns: list[str] | None) -> Iterator[Iterator[pa.RecordBatch]]:
        """Each file's batches, in order. Parquet is read row group by row group, without
        pre-buffering: the dataset scanner's read-ahead, and pre-buffering, hold memory that
        grows with the file (docs/benchmarks.md, "batch: scoring a population from Parquet")."""
        if self.format == "parquet":
            import pyarrow.parquet as pq

            for path in self.files:
                handle = self.filesystem.open_input_file(path)
                try:
                    # pre_buffer keeps every column chunk it fetched until the reader closes, and
                    # reading was slower with it, not faster.
                    reader = pq.ParquetFile(handle, pre_buffer=False)
                    yield reader.iter_batches(batch_size=chunk_rows, columns=columns)
                finally:
                    handle.close()
            return
        if self.format == "json":  # one document per file: read whole, then cut like any other
            for path in self.files:
                yield iter(_json_table(path, self.filesystem).to_batches(max_chunksize=chunk_rows))
            return
        for fragment in _dataset(self.files, self.format, self.filesystem).get_fragments():
            yield fragment.to_batches(columns=columns, batch_size=chunk_rows, batch_readahead=2, fragment_readahead=1)


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    return table.combine_chunks().to_batches()[0] if table.num_rows else pa.RecordBatch.from_pylist([], table.schema)


def open_source(location: str | Path, fmt: InputFormat | None = None) -> Source:
    """Open a file, folder, glob (`data/*.parquet`) or fsspec URL; refuse clearly what cannot be read."""
    text = str(location)
    files, filesystem = _resolve(text)
    if not files:
        raise InvalidInput(f"no input files match {text!r}")
    fmt = check_format(fmt) if fmt else _format_of(files)
    if filesystem is None:
        from pyarrow.fs import LocalFileSystem

        filesystem = LocalFileSystem()
    try:
        schema = _schema(files, fmt, filesystem)  # now: an unreadable first file fails before any work
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"cannot read {text} as {fmt}: {exc}") from exc
    return Source(text, tuple(files), fmt, filesystem, schema)


def _schema(files: Sequence[str], fmt: InputFormat, filesystem: Any) -> pa.Schema:
    if fmt == "json":
        return _json_table(files[0], filesystem).schema
    if fmt != "parquet":
        return _dataset(files, fmt, filesystem).schema
    import pyarrow.parquet as pq

    with filesystem.open_input_file(files[0]) as handle:
        return pq.ParquetFile(handle).schema_arrow


def _dataset(files: Sequence[str], fmt: InputFormat, filesystem: Any) -> Any:
    import pyarrow.dataset as ds

    file_format: Any = {"parquet": "parquet", "csv": "csv", "jsonl": ds.JsonFileFormat()}[fmt]
    return ds.dataset(list(files), format=file_format, filesystem=filesystem)


def _resolve(text: str) -> tuple[list[str], Any]:
    if "://" in text:
        return _resolve_fsspec(text)
    path = Path(text)
    if any(ch in text for ch in "*?["):
        matches = sorted(glob.glob(text, recursive=True))  # noqa: PTH207 - a user pattern may be absolute
        return [m for m in matches if Path(m).is_file()], None
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
        return files, None
    if path.is_file():
        return [str(path)], None
    raise InvalidInput(f"input {text!r} does not exist")


def _hidden(relative: Path) -> bool:
    # Spark, Hive and foretell's own outputs keep bookkeeping in _files and .files: not data.
    return any(part.startswith(("_", ".")) for part in relative.parts)


def _resolve_fsspec(url: str) -> tuple[list[str], Any]:
    try:
        import fsspec
    except ImportError as exc:
        raise InvalidInput(f"reading {url} needs fsspec: pip install fsspec") from exc
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    filesystem, _, paths = fsspec.get_fs_token_paths(url)
    files: list[str] = []
    for path in sorted(paths):
        if filesystem.isdir(path):
            files += sorted(p for p in filesystem.find(path) if not _hidden(Path(p).relative_to(path)))
        elif filesystem.exists(path):
            files.append(path)
    return files, PyFileSystem(FSSpecHandler(filesystem))


def _json_table(path: str, filesystem: Any) -> pa.Table:
    with filesystem.open_input_stream(path) as handle:
        data = handle.read()
    return rows_table(json_document_rows(data, Path(path).name), Path(path).name)


def _format_of(files: Sequence[str]) -> InputFormat:
    kinds = {SUFFIXES.get(Path(f).suffix.lower()) for f in files}
    if len(kinds) == 1 and None not in kinds:
        return kinds.pop()  # type: ignore[return-value]
    raise InvalidInput(f"cannot tell the input format from {sorted({Path(f).suffix for f in files})}; pass --format")
