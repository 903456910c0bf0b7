"""The ranges real data spans: each numeric feature's [min, max] in the sample given at registration.

Recorded in the version's metadata (`OBSERVED_RANGES`), so that a compile without a
sample, or a rebuild on another machine, still draws its validation rows across the
values real data takes, not only across the model's own split thresholds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from foretell.core.feature import NUMERIC_DTYPES
from foretell.core.schema import Signature
from foretell.formats import SUFFIXES, read_file, rows_table

__all__ = ["OBSERVED_RANGES", "observed_ranges"]

#: Version metadata key: each numeric feature's [min, max] in the sample given at registration.
OBSERVED_RANGES = "observed_ranges"


def observed_ranges(signature: Signature, sample: object, *, rows: int = 1_000_000) -> dict[str, list[float]]:
    """Each numeric feature's [min, max] in `sample`, for generating validation rows later.

    A Parquet file's own statistics are used where its writer kept them (no rows read);
    otherwise at most `rows` rows are read. Features the sample lacks, non-numeric ones,
    and columns with no finite value are left out.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted = [f.name for f in signature.inputs if f.dtype in NUMERIC_DTYPES and not f.shape]
    found = _parquet_statistics(Path(sample), wanted) if isinstance(sample, str | Path) else {}
    missing = [name for name in wanted if name not in found]
    if not missing:
        return found
    table = _sample_rows(sample, rows)
    for name in missing:
        if name not in table.column_names:
            continue
        column = table.column(name)
        kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            continue
        values = pc.cast(column, pa.float64())
        finite = pc.filter(values, pc.is_finite(values))
        if len(finite):
            bounds = pc.min_max(finite)
            found[name] = [float(bounds["min"].as_py()), float(bounds["max"].as_py())]
    return found


def _parquet_statistics(path: Path, names: list[str]) -> dict[str, list[float]]:
    if SUFFIXES.get(path.suffix.lower()) != "parquet" or not path.is_file():
        return {}
    import math

    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(path).metadata
    positions = {metadata.schema.column(i).name: i for i in range(metadata.num_columns)}
    found: dict[str, list[float]] = {}
    for name in names:
        position = positions.get(name)
        if position is None:
            continue
        lows: list[float] = []
        highs: list[float] = []
        for group in range(metadata.num_row_groups):
            stats = metadata.row_group(group).column(position).statistics
            if stats is None or not stats.has_min_max or not isinstance(stats.min, int | float):
                lows = []
                break
            lows.append(float(stats.min))
            highs.append(float(stats.max))
        if lows and all(math.isfinite(v) for v in (*lows, *highs)):
            found[name] = [min(lows), max(highs)]
    return found


def _sample_rows(sample: object, rows: int) -> Any:
    import pyarrow as pa

    kind = type(sample)
    if kind.__module__.startswith("pandas") and kind.__name__ == "DataFrame":
        return pa.Table.from_pandas(sample.head(rows), preserve_index=False)  # type: ignore[attr-defined]
    if isinstance(sample, pa.Table):
        return sample.slice(0, rows)
    if isinstance(sample, pa.RecordBatch):
        return pa.Table.from_batches([sample]).slice(0, rows)
    path = Path(str(sample))
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt in ("json", "jsonl"):
        found = read_file(path, fmt)
        return (found if isinstance(found, pa.Table) else rows_table(found, path.name)).slice(0, rows)
    if fmt == "csv":
        import pyarrow.csv as pv

        reader = pv.open_csv(path)
        batches, taken = [], 0
        for batch in reader:
            batches.append(batch)
            taken += batch.num_rows
            if taken >= rows:
                break
        return pa.Table.from_batches(batches, schema=reader.schema).slice(0, rows)
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    batches = []
    taken = 0
    for batch in file.iter_batches(batch_size=65_536):
        batches.append(batch)
        taken += batch.num_rows
        if taken >= rows:
            break
    return pa.Table.from_batches(batches, schema=file.schema_arrow).slice(0, rows)
