"""Where the ledger keeps its files, what they are named, and which of them a reader reads.

```
<ledger>/segments/model=<name>/date=<YYYY-MM-DD>/seg-<first ms>-<writer>-<seq>.parquet
                                                 cmp-<writer>-<first seq>-<last seq>.parquet
<ledger>/labels/model=<name>/labels-<ms>-<writer>-<seq>.parquet
<ledger>/batch/model=<name>/<job id>.json
<ledger>/_stats/<writer>.json
```

Every file is published whole (a temporary name, then a rename), so a reader never sees
part of one. Each writer (one per serving process: `record.writer_id`) numbers its own
segments, so processes and machines sharing one ledger never write the same name.

A writer merges its own small segments of one partition into a compacted file
`cmp-<writer>-<a>-<b>`, which holds every row of that writer's segments numbered a to b,
and then deletes them. Between the two steps both exist, so readers apply one rule: a
file is hidden when a compacted file of the same writer and partition covers its
numbers (`visible`). No reader ever counts a row twice, or misses one.

The ledger may live under an fsspec URL (an object store, for a fleet); a local path is
written with fsync, so a published segment survives a crash of the machine too.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "UNRESOLVED_MODEL",
    "FileName",
    "LedgerLocation",
    "compacted_name",
    "parse_name",
    "segment_name",
    "visible",
]

UNRESOLVED_MODEL = "_unresolved"
"""The partition of failed requests that never reached a served model (an unknown name)."""

_TEMP_PREFIX = ".tmp-"
_SEGMENT = re.compile(r"^seg-(\d{13})-(.+)-(\d{6,})\.parquet$")
_COMPACTED = re.compile(r"^cmp-(.+)-(\d{6,})-(\d{6,})\.parquet$")


def segment_name(first_ms: int, writer: str, seq: int) -> str:
    return f"seg-{first_ms:013d}-{writer}-{seq:06d}.parquet"


def compacted_name(writer: str, first: int, last: int) -> str:
    return f"cmp-{writer}-{first:06d}-{last:06d}.parquet"


@dataclass(frozen=True, slots=True)
class FileName:
    """What a segment's name says: its writer and the range of that writer's numbers it holds."""

    name: str
    writer: str
    first: int
    last: int
    compacted: bool


def parse_name(name: str) -> FileName | None:
    """The parts of a segment or compacted file's name; None for anything else (temporary files)."""
    if match := _SEGMENT.match(name):
        seq = int(match.group(3))
        return FileName(name, match.group(2), seq, seq, False)
    if match := _COMPACTED.match(name):
        return FileName(name, match.group(1), int(match.group(2)), int(match.group(3)), True)
    return None


def visible(names: Iterable[str]) -> list[str]:
    """The files of one partition a reader reads: every segment not covered by a wider compacted file."""
    parsed = [p for name in names if (p := parse_name(name)) is not None]
    covers: dict[str, list[FileName]] = {}
    for p in parsed:
        if p.compacted:
            covers.setdefault(p.writer, []).append(p)
    shown = []
    for p in parsed:
        hidden = any(
            c.first <= p.first and p.last <= c.last and (c.first, c.last) != (p.first, p.last)
            for c in covers.get(p.writer, ())
        )
        if not hidden:
            shown.append(p.name)
    return sorted(shown)


class LedgerLocation:
    """The ledger's root: a local folder, or an fsspec URL.

    Paths handed out are strings in the location's own terms (local paths, or URLs'
    paths for the fsspec filesystem in `filesystem`).
    """

    def __init__(self, where: str | Path) -> None:
        text = str(where)
        self.url = text
        self.filesystem: Any = None
        self.local = True
        if "://" in text and not text.startswith("file://"):
            import fsspec

            filesystem, root = fsspec.core.url_to_fs(text)
            if not isinstance(filesystem, fsspec.implementations.local.LocalFileSystem):
                self.filesystem, self.root, self.local = filesystem, root.rstrip("/"), False
                return
            text = root  # local://, or a chain that ends on this machine: a folder, written with fsync
        self.root = str(Path(text.removeprefix("file://")).absolute())

    def __repr__(self) -> str:
        return f"LedgerLocation({self.url!r})"

    # -- paths -------------------------------------------------------------------------------------

    def join(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def partition(self, model: str, date: str) -> str:
        return self.join("segments", f"model={model}", f"date={date}")

    def models(self) -> list[str]:
        """Every model with segments, labels or indexed batch jobs."""
        names: set[str] = set()
        for area in ("segments", "labels", "batch"):
            for entry in self.listdir(self.join(area)):
                if entry.startswith("model="):
                    names.add(entry.removeprefix("model="))
        return sorted(names)

    def dates(self, model: str) -> list[str]:
        """The date partitions of a model's segments, oldest first."""
        folder = self.join("segments", f"model={model}")
        return sorted(e.removeprefix("date=") for e in self.listdir(folder) if e.startswith("date="))

    def segment_files(self, model: str, dates: Iterable[str] | None = None) -> list[str]:
        """Full paths of the segments a reader should read for `model` (every date, or the ones given)."""
        files: list[str] = []
        for date in self.dates(model) if dates is None else dates:
            folder = self.partition(model, date)
            files.extend(f"{folder}/{name}" for name in visible(self.listdir(folder)))
        return files

    # -- files -------------------------------------------------------------------------------------

    def listdir(self, folder: str) -> list[str]:
        """Names in `folder` (not paths); empty when it does not exist. Temporary files are left out."""
        if self.local:
            try:
                names = [entry.name for entry in Path(folder).iterdir()]
            except (FileNotFoundError, NotADirectoryError):
                return []
        else:
            if not self.filesystem.exists(folder):
                return []
            names = [p.rstrip("/").rsplit("/", 1)[-1] for p in self.filesystem.ls(folder, detail=False)]
        return sorted(n for n in names if not n.startswith(_TEMP_PREFIX))

    def size(self, path: str) -> int:
        if self.local:
            return Path(path).stat().st_size
        return int(self.filesystem.size(path))

    def remove(self, path: str) -> bool:
        """Delete one file; False when it was already gone (another writer's retention got there first)."""
        try:
            if self.local:
                Path(path).unlink()
            else:
                self.filesystem.rm_file(path)
        except FileNotFoundError:
            return False
        return True

    def read_bytes(self, path: str) -> bytes | None:
        try:
            if self.local:
                return Path(path).read_bytes()
            return bytes(self.filesystem.cat_file(path))
        except FileNotFoundError:
            return None

    def publish_table(self, path: str, table: pa.Table) -> int:
        """Write `table` as Parquet at `path`, whole or not at all; returns its size in bytes."""
        import pyarrow as pa  # here, not above: readers (`foretell ledger show`) never write
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        data = sink.getvalue().to_pybytes()
        self.publish_bytes(path, data)
        return len(data)

    def publish_bytes(self, path: str, data: bytes) -> None:
        """Write `data` at `path` through a temporary name in the same folder, then one rename."""
        folder, name = path.rsplit("/", 1)
        temp = f"{folder}/{_TEMP_PREFIX}{uuid.uuid4().hex}-{name}"
        if not self.local:
            self.filesystem.makedirs(folder, exist_ok=True)
            self.filesystem.pipe_file(temp, data)
            self.filesystem.mv(temp, path)
            return
        Path(folder).mkdir(parents=True, exist_ok=True)
        try:
            with Path(temp).open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            Path(temp).replace(path)
        finally:
            Path(temp).unlink(missing_ok=True)
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    # -- helpers for the writer's upkeep -----------------------------------------------------------

    def remove_folder(self, folder: str) -> None:
        """Remove `folder` if it is empty (a date partition retention emptied); anything else leaves it."""
        try:
            if self.local:
                Path(folder).rmdir()
            elif not self.filesystem.ls(folder, detail=False):
                self.filesystem.rmdir(folder)
        except (FileNotFoundError, OSError):
            pass

    def publish_new(self, path: str, data: bytes, *, private: bool = False) -> bytes:
        """Write `data` at `path` unless a file is there already; returns what `path` holds after.

        Locally the file appears whole and only once (a hard link of a finished temporary
        file, which fails when the name exists), so writers racing to create it all read
        back the winner's bytes; `private` makes it readable by its owner only. On an
        object store the first write that lands wins, as close as such stores allow.
        """
        existing = self.read_bytes(path)
        if existing is not None:
            return existing
        folder, name = path.rsplit("/", 1)
        if not self.local:
            self.filesystem.makedirs(folder, exist_ok=True)
            if not self.filesystem.exists(path):
                self.publish_bytes(path, data)
            return self.read_bytes(path) or data
        Path(folder).mkdir(parents=True, exist_ok=True)
        temp = f"{folder}/{_TEMP_PREFIX}{uuid.uuid4().hex}-{name}"
        try:
            descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # another writer made it first: theirs is the key
                os.link(temp, path)
        finally:
            Path(temp).unlink(missing_ok=True)
        return Path(path).read_bytes()
