"""Using a recorded build: checked at every load, rebuilt for this machine when it must be.

A compiled predictor is used only when all of these hold:

- the parity proof passed (every row of the validation sample within tolerance);
- the file still hashes to what was recorded (a corrupted or swapped library is never
  handed to the dynamic loader);
- it was built for this machine: CPU, OS, C library, compiler, and tl2cgen/treelite
  versions. On another machine (a registry copied over, a shared FORETELL_HOME) it is
  rebuilt and proven again on the same validation rows before use, one process at a
  time; a rebuild that cannot pass there is not recorded, so it never takes the passing
  build away from the machines that can use it.

Otherwise the caller uses the version's original predictor, and says why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from foretell.compile import compilers
from foretell.compile.builds import BuildRecord, BuildStore, file_sha256, stored_validation
from foretell.compile.compilation import compile_version
from foretell.compile.parity import DEFAULT_TOLERANCE
from foretell.core.model import Model, ModelInfo
from foretell.core.predictor import LoadedModel

__all__ = ["LoadedBuild", "load_build"]

log = logging.getLogger("foretell.compile")


@dataclass(frozen=True)
class LoadedBuild:
    """A compiled predictor that may be used here, and the compiler that built it."""

    loaded: LoadedModel
    compiler: str


def load_build(builds: BuildStore, info: ModelInfo, artifact: Path, original: Callable[[], Model]) -> LoadedBuild | str:
    """The compiled predictor if one may be used here (rebuilt first if it must be), else why not.

    `artifact` is the version's verified artifact and `original` loads its original
    predictor: a rebuild needs both, to build again and to prove the new build.
    """
    found = _current(builds, info)
    if isinstance(found, str):
        return found
    record, folder, problem = found
    if problem is not None:
        # One rebuild at a time per artifact: the other processes (batch workers, server
        # workers) wait for it, then read the record again and find the new build.
        with builds.rebuild_lock(info.sha256):
            found = _current(builds, info)
            if isinstance(found, str):
                return found
            record, folder, problem = found
            if problem is not None:
                log.warning("%s: the compiled predictor %s; rebuilding it", info.uri, problem)
                report = compile_version(
                    builds,
                    info,
                    artifact,
                    original(),
                    tolerance=float(record.report.parity.get("tolerance", DEFAULT_TOLERANCE)),
                    validation=stored_validation(folder, len(info.signature.inputs)),
                    record_failures=False,
                )
                if not report.used:
                    log.warning("%s: the rebuilt compiled predictor is not used here: %s", info.uri, report.reason)
                    return report.reason
                found = _current(builds, info)
                if isinstance(found, str):
                    return found
                record, folder, problem = found
                if problem is not None:
                    return f"the rebuilt compiled predictor {problem}"
    built = compilers.Built(record.compiler, record.main_file, record.report.toolchain, settings=record.report.settings)
    return LoadedBuild(compilers.load(record.compiler, folder, built, info.signature), record.compiler)


def _current(builds: BuildStore, info: ModelInfo) -> tuple[BuildRecord, Path, str | None] | str:
    """The recorded passing build, its folder, and why it may not be loaded here (None: it may); or
    why there is no passing build."""
    record = builds.record(info)
    if record is None:
        return "it was never compiled (foretell models compile)"
    if record.status != "passed":
        return record.report.reason
    folder = builds.folder_of(record)
    return record, folder, _problem(record, folder)


def _problem(record: BuildRecord, folder: Path) -> str | None:
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
    if file_sha256(path) != record.file_sha256:
        return f"file {path} no longer has the sha256 recorded when it passed its parity proof"
    return None
