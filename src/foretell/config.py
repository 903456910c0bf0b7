"""Frozen settings. Reading the environment happens at the edge (cli, api), never deep inside."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_HOME", "Settings"]

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

    @property
    def registry_path(self) -> Path:
        return self.home / "registry.db"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"
