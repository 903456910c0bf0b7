"""Where the ledger is: local paths and URLs that name this machine's disk are folders; others go through fsspec."""

from __future__ import annotations

from pathlib import Path

import pytest
from ledger_entries import live_entry, rows

from foretell.ledger.query import LedgerReader
from foretell.ledger.segments import LedgerLocation
from foretell.ledger.settings import LedgerSettings
from foretell.ledger.writer import LedgerWriter


@pytest.mark.parametrize("scheme", ["", "file://", "local://"])
def test_a_url_of_this_machines_disk_is_a_folder_written_with_fsync(tmp_path: Path, scheme: str) -> None:
    location = LedgerLocation(f"{scheme}{tmp_path}/ledger")
    assert location.local and location.filesystem is None
    assert location.root == str(tmp_path / "ledger")


def test_a_local_url_ledger_is_written_and_read_back(tmp_path: Path) -> None:
    # local:// once reached DuckDB as "file://tmp/...", which it refuses: it is read as the folder it is.
    url = f"local://{tmp_path}"
    entry = live_entry(rows(2), keys=["K-1", "K-2"])
    writer = LedgerWriter(url, LedgerSettings(), writer="w1")
    writer.record(entry)
    writer.close()
    found = LedgerReader(LedgerLocation(url)).history(entry.model, key="K-2")
    assert [(r["prediction_id"], r["row"]) for r in found] == [(entry.prediction_id, 1)]
    assert LedgerLocation(tmp_path).segment_files(entry.model) == LedgerLocation(url).segment_files(entry.model)


def test_an_object_store_url_goes_through_fsspec() -> None:
    location = LedgerLocation("memory://ledger-test/here")
    assert not location.local and location.root.endswith("ledger-test/here")
