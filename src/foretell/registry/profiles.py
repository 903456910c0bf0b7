"""Where reference profiles are kept: `FORETELL_HOME/profiles/<name>/<version>.json`.

One small JSON file per version, beside the registry rather than in its database: a
profile is written once, read by the monitor, and never queried by its contents. It is
written to a temporary file in the same folder, fsynced and renamed into place, so a
reader sees the old profile or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from foretell.errors import RegistryError
from foretell.profiles.reference import ReferenceProfile

__all__ = ["ProfileStore"]


class ProfileStore:
    """The reference profiles of the registry in `home`."""

    def __init__(self, home: Path | str) -> None:
        self.root = Path(home) / "profiles"

    def path_of(self, name: str, version: int) -> Path:
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise RegistryError(f"model name {name!r} cannot name a profile file")
        return self.root / name / f"{int(version)}.json"

    def save(self, profile: ReferenceProfile) -> Path:
        """Store `profile` (replacing the version's previous one) and return its path."""
        target = self.path_of(profile.model, profile.version)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(profile.to_dict(), allow_nan=False, indent=1)
        fd, staged = tempfile.mkstemp(prefix=".profile-", suffix=".tmp", dir=target.parent)
        try:
            os.fchmod(fd, 0o644)  # readable like the registry's other files (mkstemp makes it private)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            Path(staged).replace(target)
        except BaseException:
            Path(staged).unlink(missing_ok=True)
            raise
        return target

    def load(self, name: str, version: int) -> ReferenceProfile | None:
        """The version's profile, or None when it has none (registered before profiles, or profiling failed)."""
        path = self.path_of(name, version)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return ReferenceProfile.from_dict(json.loads(text))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RegistryError(f"the profile of {name}/{version} ({path}) cannot be read: {exc}") from exc

    def delete(self, name: str, version: int) -> None:
        self.path_of(name, version).unlink(missing_ok=True)
