"""A writer killed with SIGKILL leaves only whole segments behind, and no row twice."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq

import foretell
from foretell.ledger.segments import LedgerLocation, parse_name

WRITER = textwrap.dedent(
    """
    import sys, time
    from ledger_entries import live_entry, rows
    from foretell.ledger.settings import LedgerSettings
    from foretell.ledger.writer import LedgerWriter

    writer = LedgerWriter(sys.argv[1], LedgerSettings(flush_seconds=0.05))
    writer.start()
    print("started", flush=True)
    i = 0
    while True:
        writer.record(live_entry(rows(3, start=i % 1000), keys=[f"C-{i}-{r}" for r in range(3)]))
        i += 1
        time.sleep(0.0005)
    """
)


def test_sigkill_leaves_only_whole_readable_segments(tmp_path: Path) -> None:
    here = Path(__file__).parent
    src = Path(str(foretell.__file__)).parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), str(src)])}
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "started"
        location = LedgerLocation(tmp_path)
        deadline = time.monotonic() + 20
        # Long enough for a compaction (32 files of one partition) and a few flushes after it.
        while not any(n.startswith("cmp-") for f in files_of(location) for n in [f.rsplit("/", 1)[-1]]):
            assert time.monotonic() < deadline, "no compaction happened"
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
    names = [path.rsplit("/", 1)[-1] for path in files_of(location)]
    assert names and all(parse_name(n) is not None for n in names), names
    rows = 0
    pairs: set[tuple[str, int]] = set()
    for path in location.segment_files("churn"):
        data = location.read_bytes(path)
        assert data is not None
        table = pq.read_table(io.BytesIO(data))  # whole: a partial file would not parse
        rows += table.num_rows
        pairs |= set(zip(table.column("prediction_id").to_pylist(), table.column("row").to_pylist(), strict=True))
    assert rows > 0 and len(pairs) == rows  # no row twice, compacted or not


def files_of(location: LedgerLocation) -> list[str]:
    """Every file `listdir` shows under segments/, visible or not."""
    found = []
    for date in location.dates("churn"):
        folder = location.partition("churn", date)
        found += [f"{folder}/{name}" for name in location.listdir(folder)]
    return found
