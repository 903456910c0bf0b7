"""The registry contract: named models, numbered versions, movable aliases, verified artifacts.

Metadata only: what is registered, where its artifact lives, and the records kept beside
it (compiled builds). Turning a record into a `Model` is loader.py's. `sqlite.py` is the
embedded implementation; any other backend must pass the same contract tests
(tests/contract/test_registry.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from foretell.compile import BuildStore
from foretell.core.domain import Domain
from foretell.core.model import ModelInfo
from foretell.core.schema import Signature
from foretell.registry.rollouts import RolloutStore

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
    compiled: BuildStore
    """Each version's compiled build and its report, recorded beside the versions (foretell.compile)."""
    rollouts: RolloutStore
    """Rollouts between versions: the plan, every worker's figures, each decision (registry.rollouts)."""

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
        domains: Mapping[str, Domain] | None = None,
    ) -> ModelInfo:
        """Store `path` (a file or folder) content-addressed and record it as the next version of `name`.

        `domains` set those features' domains in the signature, whichever way it was found.
        """
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
