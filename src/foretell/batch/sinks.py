"""Committing one part file so that a reader sees all of it or none of it.

The recipe is the one output committers use (Spark's, and what Ray Data's and Dask's
writers lack): write to a temporary name in the same folder, fsync the file, rename it
over the final name (atomic on POSIX within one file system), then fsync the folder so
the rename itself survives a crash. A part's name comes from its chunk number, so a
re-run writes the same name and can never leave two copies of one chunk.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["TEMP_PREFIX", "OutputFormat", "commit_table", "fsync_path", "part_name", "sweep_temp"]

OutputFormat = Literal["parquet", "csv", "jsonl"]
TEMP_PREFIX = ".tmp-"


def part_name(number: int, fmt: OutputFormat) -> str:
    suffix = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}[fmt]
    return f"part-{number:06d}.{suffix}"


def commit_table(
    table: pa.Table, folder: Path, name: str, fmt: OutputFormat = "parquet", unique: Sequence[str] = ()
) -> Path:
    """Write `table` to `folder/name` atomically and durably; returns the final path.

    `unique` names columns whose values hardly repeat (ids), which Parquet should not
    try to dictionary-encode.
    """
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    temp = folder / f"{TEMP_PREFIX}{uuid.uuid4().hex}-{name}"
    try:
        if fmt == "parquet":
            # To the path, through pyarrow's own file: a Python file object takes the GIL for every
            # page written, from threads that are scoring the other chunks.
            pq.write_table(table, str(temp), use_dictionary=_repeating(table, unique))
            fsync_path(temp)
        else:
            with temp.open("wb") as handle:
                _write_text(table, handle, fmt)
                handle.flush()
                os.fsync(handle.fileno())
        temp.replace(final)
    finally:
        temp.unlink(missing_ok=True)
    fsync_path(folder)
    return final


def _write_text(table: pa.Table, handle: object, fmt: OutputFormat) -> None:
    """CSV or JSON Lines into an open file (Parquet is written to its path, in `commit_table`)."""
    if fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(_flat(table), handle)
    else:
        import orjson

        for row in table.to_pylist():
            handle.write(orjson.dumps(row, default=str) + b"\n")  # type: ignore[attr-defined]


def _repeating(table: pa.Table, unique: Sequence[str]) -> list[str]:
    """Columns worth a Parquet dictionary: not ids, not floats (scores and probabilities rarely repeat).

    Trying a dictionary on every column was most of the time a part took to write, and made
    the file larger, not smaller (docs/benchmarks.md, "compile: compiled predictors against
    the originals", Batch).
    """
    chosen = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        listed = pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type)
        kind = column.type.value_type if listed else column.type
        if name not in unique and not pa.types.is_floating(kind):
            chosen.append(f"{name}.list.element" if listed else name)  # how Parquet names a list's values
    return chosen


def _flat(table: pa.Table) -> pa.Table:
    """CSV has no list columns: lists (probabilities, top-k) become JSON text."""
    import orjson

    columns = []
    for column in table.columns:
        if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
            column = pa.array([orjson.dumps(v).decode() for v in column.to_pylist()], pa.string())
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def fsync_path(path: Path) -> None:
    """A file's data, or a folder's entries (a rename into it), on disk: both are opened read-only to fsync."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sweep_temp(folder: Path) -> int:
    """Delete temp files a killed run left behind; returns how many."""
    if not folder.is_dir():
        return 0
    orphans = [p for p in folder.rglob(f"{TEMP_PREFIX}*") if p.is_file()]
    for orphan in orphans:
        orphan.unlink(missing_ok=True)
    return len(orphans)


def combine(parts: list[Path], target: Path, fmt: OutputFormat, unique: Sequence[str] = ()) -> Path:
    """Stream part files into one file, committed the same way as a part (temp, fsync, rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex}-{target.name}")
    try:
        if fmt == "parquet":
            writer: pq.ParquetWriter | None = None
            for part in parts:
                table = pq.read_table(part)
                if writer is None:
                    writer = pq.ParquetWriter(temp, table.schema, use_dictionary=_repeating(table, unique))
                writer.write_table(table)
            if writer is None:
                raise ValueError("no parts to combine")
            writer.close()
        else:
            with temp.open("wb") as out:
                for i, part in enumerate(parts):
                    data = part.read_bytes()
                    if fmt == "csv" and i > 0:
                        data = data.split(b"\n", 1)[1] if b"\n" in data else b""  # one header, not one per part
                    out.write(data)
        with temp.open("rb+") as handle:
            os.fsync(handle.fileno())
        temp.replace(target)
    finally:
        temp.unlink(missing_ok=True)
    fsync_path(target.parent)
    return target
