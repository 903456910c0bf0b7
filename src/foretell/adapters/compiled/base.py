"""What every compiler hands back, and the machine a build is good for."""

from __future__ import annotations

import contextlib
import io
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from typing import Any

from foretell.errors import ForetellError

__all__ = ["COMPILERS", "Built", "NotCompilable", "captured_native_output", "package_version", "target_of"]

COMPILERS = ("treelite", "onnx")


class NotCompilable(ForetellError):
    """This model keeps its original predictor; the message says why."""


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


#: The calling convention of the C entry point compiled into tree libraries (trees.py). A library
#: built with another one is never called (the arguments would not line up): the version is part of
#: a build's target, so such a library is rebuilt instead.
ENTRY_VERSION = 2


def target_of(compiler: str) -> dict[str, str]:
    """What a build for `compiler` depends on here: it is rebuilt wherever this differs.

    A shared library is only good for the CPU architecture, operating system, C library
    and Python it was built for; an ONNX graph runs anywhere ONNX Runtime does, so only
    the converter's version matters to it.
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
    return {"compiler": compiler, "skl2onnx": package_version("skl2onnx"), "onnx": package_version("onnx")}


@contextlib.contextmanager
def captured_native_output() -> Iterator[list[str]]:
    """Collect what a compiler library prints instead of showing it; yields the lines, filled on exit.

    tl2cgen and treelite log from C++ to the process's file descriptors and through a
    Python callback to `sys.stdout`; a CLI command should print its own summary, not
    their progress lines. The lines are handed back so that a failed build can quote
    them. Meant for builds, which run before serving: while it is open, output from
    other threads goes to the same sink.
    """
    lines: list[str] = []
    python_side = io.StringIO()
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(python_side), contextlib.redirect_stderr(python_side):
                yield lines
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", "replace").splitlines())
            lines.extend(python_side.getvalue().splitlines())


def describe_exception(exc: BaseException, noise: list[str] | None = None) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    tail = [line for line in (noise or []) if "error" in line.lower()][-3:]
    return first + (" | " + " | ".join(tail) if tail else "")


def plain(values: Any) -> list[float]:
    return [float(v) for v in values]
