"""What every compiler hands back, and the machine a build is good for."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata

__all__ = ["COMPILERS", "Built", "package_version", "target_of"]

COMPILERS = ("treelite", "onnx")


@dataclass(frozen=True)
class Built:
    """A compiled form written into a folder."""

    compiler: str
    main_file: str
    """The file the predictor loads (a shared library or an ONNX graph), relative to the folder."""
    toolchain: Mapping[str, str]
    """Versions of what built it, recorded for `models show`."""
    edges: Mapping[str, list[float]] = field(default_factory=dict)
    """Per-feature values where the model's answer can change (split thresholds), for the parity sample."""
    settings: Mapping[str, str] = field(default_factory=dict)
    """What the loader needs to know besides the file (recorded with the build)."""


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


@cache
def c_compiler() -> tuple[str, str] | None:
    """(toolchain name for tl2cgen, its version) of the first C compiler on PATH."""
    for name in ("gcc", "clang"):
        path = shutil.which(name)
        if path is None:
            continue
        try:
            version = subprocess.run(
                [path, "-dumpfullversion" if name == "gcc" else "-dumpversion"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        return name, version
    return None


#: The calling convention of the C entry point compiled into tree libraries (trees.py), and the
#: generation of the evaluators behind it. A library built with another one is never called (the
#: arguments might not line up): the version is part of a build's target, so such a library is rebuilt
#: instead, which is also how existing builds move to a new evaluator. Raise it whenever either
#: changes (docs/compile.md, "Where it is kept, and when it is rebuilt", lists the versions).
ENTRY_VERSION = 5


def target_of(compiler: str) -> dict[str, str]:
    """What a build for `compiler` depends on here: it is rebuilt wherever this differs.

    A shared library is only good for the CPU architecture, operating system, C library
    and compiler it was built for; an ONNX graph runs anywhere ONNX Runtime does, so it
    is never rebuilt for another machine (a host without skl2onnx can run it).
    """
    if compiler == "treelite":
        found = c_compiler()
        libc, libc_version = platform.libc_ver()
        return {
            "compiler": compiler,
            "machine": platform.machine(),
            "system": sys.platform,
            "libc": f"{libc} {libc_version}".strip(),
            "c_compiler": " ".join(found) if found else "none",
            "tl2cgen": package_version("tl2cgen"),
            "treelite": package_version("treelite"),
            "entry_point": str(ENTRY_VERSION),
        }
    return {"compiler": compiler}


def describe_exception(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0] if text else type(exc).__name__
