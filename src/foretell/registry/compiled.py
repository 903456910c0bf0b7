"""Compiled variants of registered versions: built, proven, recorded, verified on every load.

A version's compiled predictor lives under `<home>/compiled/<sha256[:2]>/<sha256>/<build>/`
(one folder per build, never rewritten, so a process still running an older build is never
pulled from under; unreferenced folders go an hour later). It is recorded in the
registry's `compiled` table with the sha256 of its file, the machine it was built for,
and its parity proof and speed figures.

It is used only when all of these hold, checked at every load:

- the parity proof passed (every row of the validation sample within tolerance);
- the file still hashes to what was recorded (a corrupted or swapped library is never
  handed to the dynamic loader);
- it was built for this machine: CPU, OS, C library, compiler, and tl2cgen/treelite
  versions. On another machine (a registry copied over, a shared FORETELL_HOME) it is
  rebuilt and proven again on the same validation rows before use, one process at a
  time; a rebuild that cannot pass there is not recorded, so it never takes the passing
  build away from the machines that can use it.

Otherwise the version's original predictor is used, and the reason is logged.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from foretell.adapters import compiled as compilers
from foretell.core.frame import Frame
from foretell.core.model import Model, ModelInfo
from foretell.core.parity import DEFAULT_TOLERANCE, ParityReport, compare_predictions
from foretell.core.predictor import LoadedModel, Predictor
from foretell.core.validation_sample import DEFAULT_ROWS, MIN_ROWS, validation_matrix
from foretell.database import Database
from foretell.errors import ForetellError, InvalidInput, MissingExtra, NotCompilable

__all__ = [
    "COMPILED_SCHEMA",
    "OBSERVED_RANGES",
    "CompileReport",
    "CompiledVariants",
    "PredictorChoice",
    "check_predictor_choice",
    "describe_outcome",
]

log = logging.getLogger("foretell.compile")

PredictorChoice = Literal["auto", "original", "compiled"]
PREDICTOR_CHOICES: tuple[PredictorChoice, ...] = ("auto", "original", "compiled")

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

_VALIDATION = "validation.npy"

#: Version metadata key: each numeric feature's [min, max] in the sample given at registration.
OBSERVED_RANGES = "observed_ranges"
_SPEED_BUDGET_SECONDS = 0.25
_SWEEP_AFTER_SECONDS = 3600.0


_EVALUATORS = {"quickscorer": "bit-vector tables", "tl2cgen": "tl2cgen's branches"}


def describe_outcome(compiled: Mapping[str, Any]) -> str:
    """One line from a `CompileReport`'s dict form: which predictor a version uses, and the proof or the reason."""
    status = compiled.get("status")
    parity = compiled.get("parity") or {}
    if status == "passed":
        worst = max((parity.get("max_abs_diff") or {"-": 0.0}).values())
        speedup = (compiled.get("speed") or {}).get("speedup") or {}
        faster = f"; one row {speedup['single_row']:g}× faster" if "single_row" in speedup else ""
        evaluator = (compiled.get("settings") or {}).get("evaluator")
        how = f" ({_EVALUATORS.get(evaluator, evaluator)})" if evaluator else ""
        return (
            f"compiled with {compiled.get('compiler')}{how}: parity passed on {parity.get('rows', 0):,} rows "
            f"(max abs diff {worst:.2g} ≤ {parity.get('tolerance', 0):g}, labels identical){faster}"
        )
    if status == "failed":
        return f"keeps its original predictor: {compiled.get('reason')}"
    return f"keeps its original predictor (not compilable): {compiled.get('reason')}"


def check_predictor_choice(choice: str) -> PredictorChoice:
    for known in PREDICTOR_CHOICES:
        if choice == known:
            return known
    raise InvalidInput(f"predictor must be one of {', '.join(PREDICTOR_CHOICES)}; got {choice!r}")


@dataclass(frozen=True)
class CompileReport:
    """The outcome of compiling one version: used or not, why, and what was measured."""

    status: Literal["passed", "failed", "unsupported"]
    compiler: str = ""
    reason: str = ""
    parity: Mapping[str, Any] = field(default_factory=dict)
    speed: Mapping[str, Any] = field(default_factory=dict)
    toolchain: Mapping[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    settings: Mapping[str, str] = field(default_factory=dict)

    @property
    def used(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "compiler": self.compiler,
            "reason": self.reason,
            "parity": dict(self.parity),
            "speed": dict(self.speed),
            "toolchain": dict(self.toolchain),
            "seconds": round(self.seconds, 3),
            "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CompileReport:
        return cls(
            status=data["status"],
            compiler=data.get("compiler", ""),
            reason=data.get("reason", ""),
            parity=data.get("parity", {}),
            speed=data.get("speed", {}),
            toolchain=data.get("toolchain", {}),
            seconds=float(data.get("seconds", 0.0)),
            settings=data.get("settings", {}),
        )


@dataclass(frozen=True)
class _Record:
    status: str
    compiler: str
    folder: str
    main_file: str
    file_sha256: str
    target: dict[str, str]
    report: CompileReport


@dataclass(frozen=True)
class LoadedVariant:
    loaded: LoadedModel
    compiler: str


class CompiledVariants:
    """The `compiled` table and the `<home>/compiled/` folder of one registry."""

    def __init__(self, root: Path, db: Database, now: Callable[[], str]) -> None:
        self.root = root
        self._db = db
        self._now = now

    # -- what is recorded ----------------------------------------------------------------

    def report_of(self, conn: Any, name: str, version: int) -> dict[str, Any] | None:
        row = conn.execute("SELECT report FROM compiled WHERE name = ? AND version = ?", (name, version)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def _record(self, info: ModelInfo) -> _Record | None:
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT status, compiler, folder, main_file, file_sha256, target, report FROM compiled "
                "WHERE name = ? AND version = ?",
                (info.name, info.version),
            ).fetchone()
        if row is None:
            return None
        return _Record(
            status=row[0],
            compiler=row[1],
            folder=row[2],
            main_file=row[3],
            file_sha256=row[4],
            target=json.loads(row[5]),
            report=CompileReport.from_dict(json.loads(row[6])),
        )

    # -- building ------------------------------------------------------------------------

    def compile(
        self,
        info: ModelInfo,
        artifact: Path,
        original: Model,
        *,
        sample: object | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        rows: int = DEFAULT_ROWS,
        validation: np.ndarray | None = None,
        record_failures: bool = True,
    ) -> CompileReport:
        """Build a compiled variant of `info`, prove it against `original`, record the outcome.

        The validation rows are `validation` when given (a rebuild re-proves on the rows of
        the first proof), else `sample`'s valid rows topped up with generated ones to at
        least `rows` (never fewer than 10,000). With `record_failures=False` (a rebuild on
        load) an outcome that is not a pass is returned but not recorded: a machine that
        cannot build or prove it must not take the passing build away from the others.
        """
        if tolerance < 0 or not np.isfinite(tolerance):
            raise ForetellError(f"tolerance must be a finite number ≥ 0; got {tolerance!r}")
        started = time.perf_counter()
        folder_name = f"{info.sha256[:2]}/{info.sha256}/{uuid.uuid4().hex[:12]}"
        folder = self.root / folder_name
        folder.mkdir(parents=True)
        keep = False
        try:
            try:
                built = compilers.build(info.flavor, artifact, info.signature, info.flavor_options, folder)
            except Exception as exc:  # whatever a converter or compiler raises, the model keeps its original
                reason = _reason(exc) if isinstance(exc, NotCompilable | MissingExtra) else _unexpected(exc)
                report = CompileReport("unsupported", reason=reason, seconds=time.perf_counter() - started)
                if record_failures:
                    self._save(info, report, "", "", "", {})
                return report
            # Hashed before it is ever loaded: what is recorded is what the proof ran.
            file_sha256 = _sha256(folder / built.main_file)
            if validation is None:
                validation = _validation_rows(info, sample, max(rows, MIN_ROWS), built.edges)
            frame = _frame(info, validation)
            try:
                loaded = compilers.load(built.compiler, folder, built, info.signature)
                candidate = Predictor(loaded, info.signature, name=f"{info.name} (compiled)")
                parity = compare_predictions(original.predictor.predict(frame), candidate.predict(frame), tolerance)
            except Exception as exc:  # a library that will not load or run fails its proof
                reason = _reason(exc) if isinstance(exc, ForetellError) else _unexpected(exc)
                parity = ParityReport(frame.n_rows, tolerance, failures=(reason,))
                candidate = None
            speed = _speeds(original.predictor, candidate, frame) if candidate is not None and parity.passed else {}
            if not parity.passed:
                reason = "parity proof failed: " + "; ".join(parity.failures)
                report = CompileReport(
                    "failed",
                    built.compiler,
                    reason,
                    parity.to_dict(),
                    speed,
                    built.toolchain,
                    time.perf_counter() - started,
                )
                if record_failures:
                    self._save(info, report, "", "", "", {})
                return report
            np.save(folder / _VALIDATION, validation)
            report = CompileReport(
                "passed",
                built.compiler,
                "",
                parity.to_dict(),
                speed,
                built.toolchain,
                time.perf_counter() - started,
                built.settings,
            )
            self._save(
                info,
                report,
                folder_name,
                built.main_file,
                file_sha256,
                compilers.target_of(built.compiler),
            )
            keep = True
            return report
        finally:
            if not keep:
                shutil.rmtree(folder, ignore_errors=True)

    def _save(
        self,
        info: ModelInfo,
        report: CompileReport,
        folder: str,
        main_file: str,
        sha256: str,
        target: Mapping[str, str],
    ) -> None:
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

    def copy_to(self, info: ModelInfo, other: CompiledVariants, other_info: ModelInfo) -> bool:
        """Give `other_info` (the same artifact, in another registry) this registry's outcome for `info`.

        For measuring a model in a scratch registry without compiling and proving it again;
        the copy is checked on load like any other build.
        """
        record = self._record(info)
        if record is None or other_info.sha256 != info.sha256 or other_info.signature != info.signature:
            return False
        folder = ""
        if record.folder:
            folder = f"{info.sha256[:2]}/{info.sha256}/{uuid.uuid4().hex[:12]}"
            shutil.copytree(self.root / record.folder, other.root / folder)
        other._save(other_info, record.report, folder, record.main_file, record.file_sha256, record.target)
        return True

    # -- loading -------------------------------------------------------------------------

    def load(self, info: ModelInfo, artifact: Path, original: Callable[[], Model]) -> LoadedVariant | str:
        """The compiled predictor if one may be used here (rebuilt first if it must be), else why not."""
        found = self._current(info)
        if isinstance(found, str):
            return found
        record, folder, problem = found
        if problem is not None:
            # One rebuild at a time per artifact: the other processes (batch workers, server
            # workers) wait for it, then read the record again and find the new build.
            with self._rebuild_lock(info.sha256):
                found = self._current(info)
                if isinstance(found, str):
                    return found
                record, folder, problem = found
                if problem is not None:
                    log.warning("%s: the compiled predictor %s; rebuilding it", info.uri, problem)
                    report = self.compile(
                        info,
                        artifact,
                        original(),
                        tolerance=float(record.report.parity.get("tolerance", DEFAULT_TOLERANCE)),
                        validation=_stored_validation(folder, len(info.signature.inputs)),
                        record_failures=False,
                    )
                    if not report.used:
                        log.warning("%s: the rebuilt compiled predictor is not used here: %s", info.uri, report.reason)
                        return report.reason
                    found = self._current(info)
                    if isinstance(found, str):
                        return found
                    record, folder, problem = found
                    if problem is not None:
                        return f"the rebuilt compiled predictor {problem}"
        built = compilers.Built(
            record.compiler, record.main_file, record.report.toolchain, settings=record.report.settings
        )
        return LoadedVariant(compilers.load(record.compiler, folder, built, info.signature), record.compiler)

    def _current(self, info: ModelInfo) -> tuple[_Record, Path, str | None] | str:
        """The recorded passing build, its folder, and why it may not be loaded here (None: it may); or
        why there is no passing build."""
        record = self._record(info)
        if record is None:
            return "it was never compiled (foretell models compile)"
        if record.status != "passed":
            return record.report.reason
        folder = self.root / record.folder
        return record, folder, self._problem(record, folder)

    @contextlib.contextmanager
    def _rebuild_lock(self, sha256: str) -> Iterator[None]:
        lock_path = self.root / sha256[:2] / f"{sha256}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _problem(self, record: _Record, folder: Path) -> str | None:
        """Why the recorded build must not be loaded here, or None when it may."""
        here = compilers.target_of(record.compiler)
        if record.target != here:
            differs = sorted(k for k in set(here) | set(record.target) if here.get(k) != record.target.get(k))
            return (
                "was built for another machine or toolchain ("
                + ", ".join(f"{k}: {record.target.get(k)!r} there, {here.get(k)!r} here" for k in differs)
                + ")"
            )
        path = folder / record.main_file
        if not path.is_file():
            return f"is missing ({path})"
        if _sha256(path) != record.file_sha256:
            return f"file {path} no longer has the sha256 recorded when it passed its parity proof"
        return None


def _reason(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


def _unexpected(exc: BaseException) -> str:
    log.debug("compiling failed unexpectedly", exc_info=exc)
    return f"{type(exc).__name__}: {exc}".strip()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stored_validation(folder: Path, width: int) -> np.ndarray | None:
    try:
        rows = np.asarray(np.load(folder / _VALIDATION, allow_pickle=False), dtype=np.float64)
    except (OSError, ValueError, EOFError):
        return None  # gone or damaged with the rest: a fresh sample is generated
    return rows if rows.ndim == 2 and rows.shape[1] == width and len(rows) >= MIN_ROWS else None


def _validation_rows(info: ModelInfo, sample: object | None, rows: int, edges: Mapping[str, list[float]]) -> np.ndarray:
    observed = None
    if sample is not None:
        columns = info.signature.coerce(_read_sample(sample), extra="ignore")
        observed = columns.frame.matrix(np.float64)
    recorded = info.metadata.get(OBSERVED_RANGES)
    ranges = recorded if isinstance(recorded, Mapping) else None
    return validation_matrix(info.signature, rows=rows, observed=observed, edges=edges, ranges=ranges)


def _read_sample(sample: object) -> object:
    if isinstance(sample, str | Path):
        path = Path(sample)
        if not path.is_file():
            raise ForetellError(f"the validation sample {path} does not exist")
        if path.suffix.lower() == ".csv":
            import pyarrow.csv as pv

            return pv.read_csv(path)
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path)
        except Exception as exc:
            raise ForetellError(f"cannot read the validation sample {path} as Parquet (or give a .csv): {exc}") from exc
    return sample


def _frame(info: ModelInfo, matrix: np.ndarray) -> Frame:
    """The rows as the model receives them after coercion: category codes, NaN for missing values.

    Not coerced again: a missing category is NaN in a coerced frame (it came as None or
    null), but a matrix input may not send NaN as a category code, and those rows matter.
    """
    if matrix.ndim != 2 or matrix.shape[1] != len(info.signature.inputs):
        raise ForetellError(f"validation rows of shape {list(matrix.shape)} do not fit {info.uri}'s signature")
    return Frame.from_matrix(np.ascontiguousarray(matrix, dtype=np.float64), info.signature.input_names)


def _speeds(original: Predictor, compiled: Predictor | None, frame: Frame) -> dict[str, Any]:
    """Median time of one row and of 64 rows, and bulk rows/s, each predictor on one thread."""
    if compiled is None:
        return {}
    from threadpoolctl import threadpool_limits

    one, batch = frame.take(slice(0, 1)), frame.take(slice(0, 64))
    figures: dict[str, Any] = {}
    with threadpool_limits(1):
        for label, predictor in (("original", original), ("compiled", compiled)):
            figures[label] = {
                "single_row_us": round(_median_seconds(predictor, one) * 1e6, 1),
                "batch_64_us": round(_median_seconds(predictor, batch) * 1e6, 1),
                "rows_per_second": round(_rows_per_second(predictor, frame)),
            }
    before, after = figures["original"], figures["compiled"]
    figures["speedup"] = {
        "single_row": round(before["single_row_us"] / max(after["single_row_us"], 1e-3), 1),
        "batch_64": round(before["batch_64_us"] / max(after["batch_64_us"], 1e-3), 1),
        "rows_per_second": round(after["rows_per_second"] / max(before["rows_per_second"], 1), 1),
    }
    return figures


def _median_seconds(predictor: Predictor, frame: Frame) -> float:
    predictor.predict(frame)  # first call pays for lazy set-up
    times: list[float] = []
    deadline = time.perf_counter() + _SPEED_BUDGET_SECONDS
    while len(times) < 5 or (time.perf_counter() < deadline and len(times) < 500):
        started = time.perf_counter()
        predictor.predict(frame)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def _rows_per_second(predictor: Predictor, frame: Frame) -> float:
    started = time.perf_counter()
    predictor.predict(frame)
    return frame.n_rows / max(time.perf_counter() - started, 1e-9)
