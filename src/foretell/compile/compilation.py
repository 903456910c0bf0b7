"""One compilation: build a version's compiled form, prove it against the original, time it, record it.

The compiled predictor is proven before anything uses it: every row of the validation
sample must give the original's answers (parity.py), or the version keeps its original
predictor and the record says why. The file is hashed before it is ever loaded, so what
is recorded is what the proof ran, and verification.py can tell later if it changed.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np

from foretell.compile import compilers
from foretell.compile.builds import BuildStore, file_sha256, save_validation
from foretell.compile.parity import DEFAULT_TOLERANCE, ParityReport, compare_predictions
from foretell.compile.report import CompileReport
from foretell.compile.speed import speed_figures
from foretell.compile.validation_sample import DEFAULT_ROWS, MIN_ROWS, validation_frame, validation_rows
from foretell.core.model import Model, ModelInfo
from foretell.core.predictor import Predictor
from foretell.errors import ForetellError, MissingExtra, NotCompilable

__all__ = ["compile_version"]

log = logging.getLogger("foretell.compile")


def compile_version(
    builds: BuildStore,
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
    """Build `artifact` (verified by the caller), prove it against `original`, record the outcome in `builds`.

    The validation rows are `validation` when given (a rebuild re-proves on the rows of
    the first proof), else `sample`'s valid rows topped up with generated ones to at
    least `rows` (never fewer than 10,000). With `record_failures=False` (a rebuild on
    load) an outcome that is not a pass is returned but not recorded: a machine that
    cannot build or prove it must not take the passing build away from the others.
    """
    if tolerance < 0 or not np.isfinite(tolerance):
        raise ForetellError(f"tolerance must be a finite number ≥ 0; got {tolerance!r}")
    started = time.perf_counter()
    folder_name, folder = builds.new_folder(info)
    keep = False
    try:
        try:
            built = compilers.build(info.flavor, artifact, info.signature, info.flavor_options, folder)
        except Exception as exc:  # whatever a converter or compiler raises, the model keeps its original
            reason = _reason(exc) if isinstance(exc, NotCompilable | MissingExtra) else _unexpected(exc)
            report = CompileReport("unsupported", reason=reason, seconds=time.perf_counter() - started)
            if record_failures:
                builds.save(info, report, "", "", "", {})
            return report
        # Hashed before it is ever loaded: what is recorded is what the proof ran.
        sha256 = file_sha256(folder / built.main_file)
        if validation is None:
            validation = validation_rows(info, sample, max(rows, MIN_ROWS), built.edges)
        frame = validation_frame(info, validation)
        candidate: Predictor | None
        try:
            loaded = compilers.load(built.compiler, folder, built, info.signature)
            candidate = Predictor(loaded, info.signature, name=f"{info.name} (compiled)")
            parity = compare_predictions(original.predictor.predict(frame), candidate.predict(frame), tolerance)
        except Exception as exc:  # a library that will not load or run fails its proof
            reason = _reason(exc) if isinstance(exc, ForetellError) else _unexpected(exc)
            parity = ParityReport(frame.n_rows, tolerance, failures=(reason,))
            candidate = None
        speed = speed_figures(original.predictor, candidate, frame) if candidate is not None and parity.passed else {}
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
                builds.save(info, report, "", "", "", {})
            return report
        save_validation(folder, validation)
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
        builds.save(info, report, folder_name, built.main_file, sha256, compilers.target_of(built.compiler))
        keep = True
        return report
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _reason(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


def _unexpected(exc: BaseException) -> str:
    log.debug("compiling failed unexpectedly", exc_info=exc)
    return f"{type(exc).__name__}: {exc}".strip()
