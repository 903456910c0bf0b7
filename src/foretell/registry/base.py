"""The registry contract: named models, numbered versions, movable aliases, verified artifacts.

`sqlite.py` is the embedded implementation; any other backend must pass the same
contract tests (tests/contract/test_registry.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from foretell.core.model import Model, ModelInfo
from foretell.core.schema import Signature

__all__ = ["ModelSummary", "Registry"]


@dataclass(frozen=True)
class ModelSummary:
    """One registered name: how many versions, the newest, and where its aliases point."""

    name: str
    latest_version: int
    version_count: int
    aliases: Mapping[str, int] = field(default_factory=dict)
    description: str = ""
    updated_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "latest_version": self.latest_version,
            "version_count": self.version_count,
            "aliases": dict(self.aliases),
            "description": self.description,
            "updated_at": self.updated_at,
        }


class Registry(Protocol):
    home: Path

    def register(
        self,
        name: str,
        path: Path,
        *,
        flavor: str | None = None,
        signature: Signature | None = None,
        sample: object | None = None,
        flavor_options: Mapping[str, Any] | None = None,
        description: str = "",
        metadata: Mapping[str, Any] | None = None,
        aliases: Sequence[str] = (),
    ) -> ModelInfo:
        """Store `path` (a file or folder) content-addressed and record it as the next version of `name`."""
        ...

    def get(self, uri: str) -> ModelInfo:
        """The version a URI names: `models:/name/3`, `models:/name@alias`, `name/3`, `name@alias`, `name`."""
        ...

    def list_models(self) -> list[ModelSummary]: ...

    def list_versions(self, name: str) -> list[ModelInfo]: ...

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point `alias` at `version`, moving it if it pointed elsewhere."""
        ...

    def delete_alias(self, name: str, alias: str) -> None: ...

    def delete_version(self, name: str, version: int) -> None:
        """Forget a version and its aliases; its artifact goes when no other version shares it."""
        ...

    def artifact_path(self, info: ModelInfo, *, verify: bool = True) -> Path:
        """Where the artifact lives, after checking its bytes still hash to `info.sha256`."""
        ...

    def load(self, uri: str, *, predictor: str = "auto") -> Model:
        """Resolve, verify, and load: the compiled predictor when it passed its parity proof, else the flavor's."""
        ...

    def compile(
        self, uri: str, *, sample: object | None = None, tolerance: float | None = None, rows: int | None = None
    ) -> Any:
        """Compile a version, prove it against the original, and record the outcome (a `CompileReport`)."""
        ...
