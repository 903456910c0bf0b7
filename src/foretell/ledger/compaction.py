"""Merging one writer's small segments of a partition into one compacted file.

The compacted file is published first and the segments it covers deleted after; between
the two steps `segments.visible` hides the covered ones, so a reader sees each row once.
A writer only ever compacts its own files: it knows they are complete and that no one
else will touch their numbers.
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from foretell.ledger.segments import LedgerLocation, compacted_name, parse_name

__all__ = ["compact"]


def compact(location: LedgerLocation, folder: str, writer: str, names: list[str]) -> tuple[str, int] | None:
    """Merge `names` (this writer's files in `folder`) into one; returns the new file's name and size.

    A file already gone (retention, this writer's or another's) is simply not in the
    merge; None when fewer than two are left to merge.
    """
    parsed = []
    tables = []
    for p in [p for name in names if (p := parse_name(name)) is not None and p.writer == writer]:
        data = location.read_bytes(f"{folder}/{p.name}")
        if data is not None:
            parsed.append(p)
            # On the calling thread (the writer's, at a lower priority), not Arrow's pool of threads at full priority.
            tables.append(pq.read_table(io.BytesIO(data), use_threads=False))
    if len(parsed) < 2:
        return None
    merged = pa.concat_tables(tables, promote_options="permissive")
    first = min(p.first for p in parsed)
    last = max(p.last for p in parsed)
    name = compacted_name(writer, first, last)
    size = location.publish_table(f"{folder}/{name}", merged)
    for p in parsed:
        if p.name != name:
            location.remove(f"{folder}/{p.name}")
    return name, size
