"""Print a few rows of a published batch output: `python examples/show_output.py OUTPUT [N]`."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq

output = Path(sys.argv[1])
shown = int(sys.argv[2]) if len(sys.argv) > 2 else 5
if not (output / "_SUCCESS").is_file():
    sys.exit(f"{output} is not a published output (no _SUCCESS)")
table = pq.read_table(output)
print(f"{output}: {table.num_rows:,} rows, columns {table.column_names}")
for row in table.slice(0, shown).to_pylist():
    print("  " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
