"""Frozen settings. Reading the environment happens at the edge (cli, api), never deep inside."""

from __future__ import annotations

import logging
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_HOME", "Settings", "parse_duration"]

DEFAULT_HOME = Path(".foretell")


@dataclass(frozen=True, slots=True)
class Settings:
    """Where foretell keeps its state: `home/registry.db`, `home/artifacts/`, and later jobs and stores."""

    home: Path = DEFAULT_HOME

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = env.get("FORETELL_HOME") or str(DEFAULT_HOME)
        return cls(home=Path(home).expanduser())


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: str | float | int) -> float:
    """Seconds in `value`: a number of seconds, or text such as "90s", "15m", "26h", "7d" (else ValueError)."""
    if isinstance(value, bool):
        raise ValueError(f"a duration is a number of seconds or text like '26h', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(value) if isinstance(value, str) else None
        if match is None:
            raise ValueError(f"a duration is a number of seconds or text like '90s', '15m', '26h', '7d'; got {value!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be a finite number of seconds ≥ 0, got {value!r}")
    return seconds


def lines_on_stderr(name: str) -> logging.Logger:
    """The logger `name`, writing its INFO messages as bare lines on stderr unless it already has a handler.

    For what a server says to its operator (which model answers, every request's access
    line), not through the root logger, so that an application's own logging setup is
    left alone.
    """
    logger = logging.getLogger(name)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger
