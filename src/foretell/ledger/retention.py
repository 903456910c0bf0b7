"""Deleting what a model's policy no longer keeps: date partitions past its days, then the oldest files past its bytes.

Any writer may run this for any model, at the same time as others: a file another
writer deleted first is skipped (and not counted twice). A compacted file goes with the
segments it covers, those first, so deleting it never brings them back into view.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from foretell.ledger.segments import LedgerLocation, parse_name, visible
from foretell.ledger.settings import LedgerPolicy

__all__ = ["Deleted", "apply_retention"]


@dataclass
class Deleted:
    segments: int = 0
    bytes: int = 0


def apply_retention(location: LedgerLocation, model: str, policy: LedgerPolicy, now: float) -> Deleted:
    deleted = Deleted()
    cutoff = dt.datetime.fromtimestamp(now, dt.UTC) - dt.timedelta(days=policy.retention_days)
    # A date partition goes when its last instant is before the cutoff: every row in it is older.
    last_kept = (cutoff - dt.timedelta(days=1)).date().isoformat()
    dates = location.dates(model)
    for date in dates:
        if date <= last_kept:
            folder = location.partition(model, date)
            for name in location.listdir(folder):
                _remove(location, f"{folder}/{name}", deleted)
            location.remove_folder(folder)
    if policy.retention_bytes is not None:
        today = dt.datetime.fromtimestamp(now, dt.UTC).date().isoformat()
        _apply_budget(location, model, policy.retention_bytes, deleted, today)
    return deleted


def _apply_budget(location: LedgerLocation, model: str, budget: int, deleted: Deleted, today: str) -> None:
    files: list[tuple[str, int, str, str, int]] = []  # (date, order, name, path, size)
    for date in location.dates(model):
        folder = location.partition(model, date)
        for name in visible(location.listdir(folder)):
            parsed = parse_name(name)
            assert parsed is not None
            order = 0 if parsed.compacted else int(name.split("-", 2)[1])
            path = f"{folder}/{name}"
            try:
                size = location.size(path)
            except FileNotFoundError:
                continue
            files.append((date, order, name, path, size))
    total = sum(f[4] for f in files)
    for date, _, name, path, size in sorted(files):
        if total <= budget:
            break
        folder = location.partition(model, date)
        parsed = parse_name(name)
        if parsed is not None and parsed.compacted:
            for other in location.listdir(folder):
                covered = parse_name(other)
                if (
                    covered is not None
                    and other != name
                    and covered.writer == parsed.writer
                    and parsed.first <= covered.first
                    and covered.last <= parsed.last
                ):
                    _remove(location, f"{folder}/{other}", deleted, count=False)
        _remove(location, path, deleted, size=size)
        total -= size
        if date < today:  # today's folder stays: a writer may be about to publish in it
            location.remove_folder(folder)


def _remove(
    location: LedgerLocation, path: str, deleted: Deleted, *, size: int | None = None, count: bool = True
) -> None:
    if size is None:
        try:
            size = location.size(path)
        except FileNotFoundError:
            return
    if location.remove(path) and count:
        deleted.segments += 1
        deleted.bytes += size
