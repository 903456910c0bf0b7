"""Build storage: the `compiled` table of a registry and its `<home>/compiled/` folder.

A version's compiled predictor lives under `<home>/compiled/<sha256[:2]>/<sha256>/<build>/`
(one folder per build, never rewritten, so a process still running an older build is never
pulled from under; unreferenced folders go an hour later). It is recorded in the
registry's `compiled` table with the sha256 of its file, the machine it was built for,
and its report (parity proof and speed figures). The table lives in the registry's own
database, so a deleted version takes its record with it.

What is stored here is decided elsewhere: compilation.py builds and proves, and
verification.py checks a build before each use.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from foretell.compile.report import CompileReport
from foretell.compile.validation_sample import MIN_ROWS
from foretell.core.model import ModelInfo
from foretell.database import Database

__all__ = ["COMPILED_SCHEMA", "BuildRecord", "BuildStore", "file_sha256", "save_validation", "stored_validation"]

COMPILED_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS compiled (
        name        TEXT NOT NULL,
        version     INTEGER NOT NULL,
        status      TEXT NOT NULL,  -- passed | failed | unsupported
        compiler    TEXT NOT NULL,
        reason      TEXT NOT NULL,
        folder      TEXT NOT NULL,  -- relative to <home>/compiled; '' when nothing was kept
        main_file   TEXT NOT NULL,
        file_sha256 TEXT NOT NULL,
        target      TEXT NOT NULL,  -- JSON: the machine and toolchain the file is good for
        report      TEXT NOT NULL,  -- JSON: CompileReport.to_dict()
        built_at    TEXT NOT NULL,
        PRIMARY KEY (name, version),
        FOREIGN KEY (name, version) REFERENCES versions (name, version) ON DELETE CASCADE
    )""",
)

#: The validation rows a build passed its proof on, kept in its folder: a rebuild proves on them again.
_VALIDATION = "validation.npy"
_SWEEP_AFTER_SECONDS = 3600.0


@dataclass(frozen=True)
class BuildRecord:
    """One version's recorded outcome: its build's folder and file (when one was kept) and its report."""

    status: str
    compiler: str
    folder: str
    main_file: str
    file_sha256: str
    target: dict[str, str]
    report: CompileReport


class BuildStore:
    """The `compiled` table and the `<home>/compiled/` folder of one registry."""

    def __init__(self, root: Path, db: Database, now: Callable[[], str]) -> None:
        self.root = root
        self._db = db
        self._now = now

    def report_of(self, conn: Any, name: str, version: int) -> dict[str, Any] | None:
        """The recorded report's dict form (`ModelInfo.compiled`), read on the registry's own connection."""
        row = conn.execute("SELECT report FROM compiled WHERE name = ? AND version = ?", (name, version)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def record(self, info: ModelInfo) -> BuildRecord | None:
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT status, compiler, folder, main_file, file_sha256, target, report FROM compiled "
                "WHERE name = ? AND version = ?",
                (info.name, info.version),
            ).fetchone()
        if row is None:
            return None
        return BuildRecord(
            status=row[0],
            compiler=row[1],
            folder=row[2],
            main_file=row[3],
            file_sha256=row[4],
            target=json.loads(row[5]),
            report=CompileReport.from_dict(json.loads(row[6])),
        )

    def folder_of(self, record: BuildRecord) -> Path:
        return self.root / record.folder

    def new_folder(self, info: ModelInfo) -> tuple[str, Path]:
        """A fresh, empty build folder for `info`'s artifact: (its name relative to the root, its path)."""
        name = f"{info.sha256[:2]}/{info.sha256}/{uuid.uuid4().hex[:12]}"
        folder = self.root / name
        folder.mkdir(parents=True)
        return name, folder

    def save(
        self,
        info: ModelInfo,
        report: CompileReport,
        folder: str,
        main_file: str,
        sha256: str,
        target: Mapping[str, str],
    ) -> None:
        """Record `report` as `info`'s outcome (replacing any earlier one), then sweep unreferenced builds."""
        with self._db.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO compiled (name, version, status, compiler, reason, folder, main_file, "
                "file_sha256, target, report, built_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    info.name,
                    info.version,
                    report.status,
                    report.compiler,
                    report.reason,
                    folder,
                    main_file,
                    sha256,
                    json.dumps(dict(target)),
                    json.dumps(report.to_dict()),
                    self._now(),
                ),
            )
        self._sweep()

    def _sweep(self) -> None:
        """Delete build folders no record points to, once they are an hour old.

        Not at once: a process may be between checking a build and loading it, or be
        about to load the one it just checked. An hour later, any process still using an
        old library has it mapped, and Linux unlinks a mapped file without unmapping it.
        """
        with self._db.read() as conn:
            kept = {row[0] for row in conn.execute("SELECT folder FROM compiled WHERE folder != ''")}
        cutoff = time.time() - _SWEEP_AFTER_SECONDS
        for build in self.root.glob("*/*/*"):
            relative = build.relative_to(self.root).as_posix()
            try:
                old = build.is_dir() and build.stat().st_mtime < cutoff
            except OSError:
                continue
            if old and relative not in kept:
                shutil.rmtree(build, ignore_errors=True)

    def copy_to(self, info: ModelInfo, other: BuildStore, other_info: ModelInfo) -> bool:
        """Give `other_info` (the same artifact, in another registry) this registry's outcome for `info`.

        For measuring a model in a scratch registry without compiling and proving it again;
        the copy is checked on load like any other build.
        """
        record = self.record(info)
        if record is None or other_info.sha256 != info.sha256 or other_info.signature != info.signature:
            return False
        folder = ""
        if record.folder:
            folder = f"{info.sha256[:2]}/{info.sha256}/{uuid.uuid4().hex[:12]}"
            shutil.copytree(self.root / record.folder, other.root / folder)
        other.save(other_info, record.report, folder, record.main_file, record.file_sha256, record.target)
        return True

    @contextlib.contextmanager
    def rebuild_lock(self, sha256: str) -> Iterator[None]:
        """Held while one process rebuilds an artifact's build; the others wait, then read the new record."""
        lock_path = self.root / sha256[:2] / f"{sha256}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def save_validation(folder: Path, rows: np.ndarray) -> None:
    """Keep the rows a build passed its proof on, in its folder."""
    np.save(folder / _VALIDATION, rows)


def stored_validation(folder: Path, width: int) -> np.ndarray | None:
    """The rows a build was proven on, or None when they are gone, damaged or do not fit `width` features."""
    try:
        rows = np.asarray(np.load(folder / _VALIDATION, allow_pickle=False), dtype=np.float64)
    except (OSError, ValueError, EOFError):
        return None  # gone or damaged with the rest: a fresh sample is generated
    return rows if rows.ndim == 2 and rows.shape[1] == width and len(rows) >= MIN_ROWS else None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
