"""The embedded registry: one SQLite file (WAL) beside a content-addressed artifact store.

Every operation opens its own short-lived connection. Registry calls are rare next to
predictions, and a connection per call is what makes the registry safe to share
between threads and across `fork` without any bookkeeping.

Version numbers are allocated inside `BEGIN IMMEDIATE`, which takes SQLite's single
write lock before reading the counter, so two processes registering the same name at
once get distinct versions. Numbers are never reused, even after a delete, so a job
pinned to `churn/3` can never silently get a different model.

It stores and finds; loading a version is loader.py's, and its compiled builds are
recorded through foretell.compile's `BuildStore` in this same database.
"""

from __future__ import annotations

import difflib
import json
import platform
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from foretell.adapters import Flavor, detect_flavor, get_flavor
from foretell.compile import COMPILED_SCHEMA, OBSERVED_RANGES, BuildStore, observed_ranges
from foretell.core.domain import Domain
from foretell.core.model import ModelInfo
from foretell.core.schema import Signature
from foretell.database import Database
from foretell.errors import (
    AliasNotFound,
    InvalidSignature,
    ModelNotFound,
    RegistryError,
    VersionNotFound,
)
from foretell.registry.artifacts import ArtifactStore
from foretell.registry.base import ModelSummary
from foretell.registry.rollouts import ROLLOUTS_SCHEMA, RolloutStore
from foretell.registry.sample import signature_with_sample
from foretell.registry.uri import ModelRef, check_alias, check_model_name, check_version, parse_model_uri

__all__ = ["SCHEMA_VERSION", "SqliteRegistry", "signature_for"]

SCHEMA_VERSION = 3

# Version 2 added the `compiled` table, version 3 the rollouts' tables; every statement is
# idempotent, so an older file is brought up to date by running them all again.
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS models (
        name         TEXT PRIMARY KEY,
        last_version INTEGER NOT NULL DEFAULT 0,  -- never decreases: deleted numbers are not reused
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS versions (
        name               TEXT NOT NULL REFERENCES models (name),
        version            INTEGER NOT NULL,
        flavor             TEXT NOT NULL,
        sha256             TEXT NOT NULL,
        size_bytes         INTEGER NOT NULL,
        artifact           TEXT NOT NULL,  -- relative to <home>/artifacts
        created_at         TEXT NOT NULL,
        description        TEXT NOT NULL,
        signature          TEXT NOT NULL,
        metadata           TEXT NOT NULL,
        flavor_options     TEXT NOT NULL,
        framework_versions TEXT NOT NULL,
        PRIMARY KEY (name, version)
    )""",
    "CREATE INDEX IF NOT EXISTS versions_by_artifact ON versions (artifact)",
    """CREATE TABLE IF NOT EXISTS aliases (
        name       TEXT NOT NULL,
        alias      TEXT NOT NULL,
        version    INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (name, alias),
        FOREIGN KEY (name, version) REFERENCES versions (name, version) ON DELETE CASCADE
    )""",
    *COMPILED_SCHEMA,
    *ROLLOUTS_SCHEMA,
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SqliteRegistry:
    """Models, versions and aliases in `<home>/registry.db`; artifacts in `<home>/artifacts/`."""

    def __init__(self, home: Path, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self.home = Path(home)
        if self.home.exists() and not self.home.is_dir():
            raise RegistryError(f"the foretell home {self.home} is a file; it must be a folder (FORETELL_HOME)")
        self.home.mkdir(parents=True, exist_ok=True)
        self.db_path = self.home / "registry.db"
        self.artifacts = ArtifactStore(self.home / "artifacts")
        self._clock = clock
        self._db = Database(
            self.db_path,
            what="registry database",
            error=RegistryError,
            schema=_SCHEMA,
            version=SCHEMA_VERSION,
            on_connect=("PRAGMA foreign_keys = ON",),
            rows_as_mappings=True,
        )
        self._db.create_schema()
        self.compiled = BuildStore(self.home / "compiled", self._db, self._now)
        self.rollouts = RolloutStore(self._db, self._now, self._move_alias, self._check_version)

    def __repr__(self) -> str:
        return f"SqliteRegistry({str(self.home)!r})"

    # -- writing -------------------------------------------------------------------------

    def register(
        self,
        name: str,
        path: Path,
        *,
        flavor: str | None = None,
        signature: Signature | Mapping[str, Any] | None = None,
        sample: object | None = None,
        flavor_options: Mapping[str, Any] | None = None,
        description: str = "",
        metadata: Mapping[str, Any] | None = None,
        aliases: Sequence[str] = (),
        domains: Mapping[str, Domain] | None = None,
    ) -> ModelInfo:
        """Store `path` (a file or folder) content-addressed and record it as the next version of `name`.

        The signature is `signature` when given (a `Signature` or its dict form); otherwise the
        flavor's reading of the artifact, with input names and types taken from `sample` (a
        pandas DataFrame, a pyarrow Table, or a Parquet/CSV file path) when one is given.
        `domains` then set those features' domains.
        """
        check_model_name(name)
        if isinstance(aliases, str):
            raise RegistryError(f"aliases= takes a list of alias names, got the string {aliases!r}; wrap it in a list")
        wanted = list(dict.fromkeys(check_alias(alias) for alias in aliases))
        path = Path(path)
        if not path.exists():
            raise RegistryError(f"cannot register {name!r}: {path} does not exist")
        options = dict(flavor_options or {})
        chosen = get_flavor(flavor) if flavor else detect_flavor(path)
        resolved = signature_for(name, path, chosen, options, signature, sample)
        if domains:
            resolved = resolved.with_domains(domains)
        recorded = dict(metadata or {})
        if sample is not None and OBSERVED_RANGES not in recorded:
            # Kept so that a compile without a sample (or a rebuild elsewhere) still draws its
            # validation rows across the ranges the real data spans.
            recorded[OBSERVED_RANGES] = observed_ranges(resolved, sample)
        record = {
            "flavor": chosen.name,
            "description": description,
            "signature": _to_json("signature", resolved.to_dict()),
            "metadata": _to_json("metadata", recorded),
            "flavor_options": _to_json("flavor_options", options),
            "framework_versions": _to_json(
                "framework_versions", {**chosen.framework_versions(), "python": platform.python_version()}
            ),
        }
        # The artifact is copied before taking the write lock (copies can be slow); a delete that
        # purged the same content in between is caught below and the copy is made again.
        for _ in range(3):
            stored = self.artifacts.put(path)
            with self._db.write() as conn:
                if not self.artifacts.path_of(stored.relative_path).exists():
                    continue
                now = self._now()
                conn.execute(
                    "INSERT INTO models (name, created_at, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
                    (name, now, now),
                )
                conn.execute(
                    "UPDATE models SET last_version = last_version + 1, updated_at = ? WHERE name = ?", (now, name)
                )
                version = conn.execute("SELECT last_version FROM models WHERE name = ?", (name,)).fetchone()[0]
                conn.execute(
                    "INSERT INTO versions (name, version, sha256, size_bytes, artifact, created_at, flavor, "
                    "description, signature, metadata, flavor_options, framework_versions) VALUES "
                    "(:name, :version, :sha256, :size_bytes, :artifact, :created_at, :flavor, :description, "
                    ":signature, :metadata, :flavor_options, :framework_versions)",
                    {
                        **record,
                        "name": name,
                        "version": version,
                        "sha256": stored.sha256,
                        "size_bytes": stored.size_bytes,
                        "artifact": stored.relative_path,
                        "created_at": now,
                    },
                )
                for alias in wanted:
                    _point_alias(conn, name, alias, version, now)
                return self._info(conn, name, version)
        raise RegistryError(f"could not register {name!r}: its artifact was deleted by another process three times")

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point `alias` at `version`, moving it if it pointed elsewhere."""
        check_alias(alias)
        check_version(version)
        with self._db.write() as conn:
            self._resolve(conn, ModelRef(name, version=version))
            now = self._now()
            _point_alias(conn, name, alias, version, now)
            conn.execute("UPDATE models SET updated_at = ? WHERE name = ?", (now, name))

    def _move_alias(self, conn: sqlite3.Connection, name: str, alias: str, version: int) -> None:
        """A promotion's alias move, inside the rollout store's transaction."""
        now = self._now()
        _point_alias(conn, name, check_alias(alias), version, now)
        conn.execute("UPDATE models SET updated_at = ? WHERE name = ?", (now, name))

    def _check_version(self, conn: sqlite3.Connection, name: str, version: int) -> None:
        self._resolve(conn, ModelRef(name, version=check_version(version)))

    def delete_alias(self, name: str, alias: str) -> None:
        check_alias(alias)
        with self._db.write() as conn:
            self._resolve(conn, ModelRef(name, alias=alias))
            conn.execute("DELETE FROM aliases WHERE name = ? AND alias = ?", (name, alias))
            conn.execute("UPDATE models SET updated_at = ? WHERE name = ?", (self._now(), name))

    def delete_version(self, name: str, version: int) -> None:
        """Forget a version and its aliases; its artifact goes when no other version shares it."""
        check_version(version)
        withdrawn: Path | None = None
        artifact = ""
        try:
            with self._db.write() as conn:
                self._resolve(conn, ModelRef(name, version=version))
                artifact = conn.execute(
                    "SELECT artifact FROM versions WHERE name = ? AND version = ?", (name, version)
                ).fetchone()[0]
                conn.execute("DELETE FROM aliases WHERE name = ? AND version = ?", (name, version))
                conn.execute("DELETE FROM versions WHERE name = ? AND version = ?", (name, version))
                conn.execute("UPDATE models SET updated_at = ? WHERE name = ?", (self._now(), name))
                shared = conn.execute("SELECT 1 FROM versions WHERE artifact = ? LIMIT 1", (artifact,)).fetchone()
                # Moved aside while the write lock is held, so no register can adopt it in between;
                # it comes back if the commit fails.
                if shared is None:
                    withdrawn = self.artifacts.withdraw(artifact)
        except BaseException:
            if withdrawn is not None:
                self.artifacts.restore(withdrawn, artifact)
            raise
        if withdrawn is not None:
            self.artifacts.purge(withdrawn, artifact)

    # -- reading -------------------------------------------------------------------------

    def get(self, uri: str | ModelRef) -> ModelInfo:
        """The version a URI names: `models:/name/3`, `models:/name@alias`, `name/3`, `name@alias`, `name`."""
        ref = uri if isinstance(uri, ModelRef) else parse_model_uri(uri)
        with self._db.read() as conn:
            return self._info(conn, ref.name, self._resolve(conn, ref))

    def list_models(self) -> list[ModelSummary]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT v.name, MAX(v.version) AS latest, COUNT(*) AS n, m.updated_at FROM versions AS v "
                "JOIN models AS m ON m.name = v.name GROUP BY v.name ORDER BY v.name"
            ).fetchall()
            summaries = []
            for row in rows:
                described = conn.execute(
                    "SELECT description FROM versions WHERE name = ? AND version = ?", (row["name"], row["latest"])
                ).fetchone()
                summaries.append(
                    ModelSummary(
                        name=row["name"],
                        latest_version=row["latest"],
                        version_count=row["n"],
                        aliases=_aliases_of(conn, row["name"]),
                        description=described["description"],
                        updated_at=row["updated_at"],
                    )
                )
            return summaries

    def list_versions(self, name: str) -> list[ModelInfo]:
        with self._db.read() as conn:
            self._resolve(conn, ModelRef(name))
            rows = conn.execute("SELECT version FROM versions WHERE name = ? ORDER BY version", (name,))
            versions = [row[0] for row in rows]
            return [self._info(conn, name, version) for version in versions]

    def artifact_path(self, info: ModelInfo, *, verify: bool = True) -> Path:
        """Where the artifact lives, after checking its bytes still hash to `info.sha256`."""
        with self._db.read() as conn:
            self._resolve(conn, ModelRef(info.name, version=info.version))
            row = conn.execute(
                "SELECT artifact, sha256 FROM versions WHERE name = ? AND version = ?", (info.name, info.version)
            ).fetchone()
        if row["sha256"] != info.sha256:
            raise RegistryError(
                f"{info.uri} is recorded with sha256 {row['sha256']}, but the ModelInfo given says {info.sha256}; "
                f"it comes from another registry: fetch it again with get({info.uri!r})"
            )
        path = self.artifacts.path_of(row["artifact"])
        if verify:
            self.artifacts.verify(path, info.sha256, label=f"{info.name}/{info.version} ({path.name})")
        return path

    # -- plumbing ------------------------------------------------------------------------

    def _now(self) -> str:
        return self._clock().astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _resolve(self, conn: sqlite3.Connection, ref: ModelRef) -> int:
        """The version number `ref` names; the error lists what does exist."""
        latest = conn.execute("SELECT MAX(version) FROM versions WHERE name = ?", (ref.name,)).fetchone()[0]
        if latest is None:
            raise ModelNotFound(self._no_model(conn, ref.name))
        if ref.alias is not None:
            row = conn.execute(
                "SELECT version FROM aliases WHERE name = ? AND alias = ?", (ref.name, ref.alias)
            ).fetchone()
            if row is None:
                aliases = _aliases_of(conn, ref.name)
                listed = ", ".join(f"{a} → {v}" for a, v in aliases.items())
                have = f"its aliases: {listed}" if aliases else "it has no aliases yet"
                raise AliasNotFound(f"model {ref.name!r} has no alias {ref.alias!r}; {have}")
            return int(row[0])
        if ref.version is not None:
            found = conn.execute(
                "SELECT 1 FROM versions WHERE name = ? AND version = ?", (ref.name, ref.version)
            ).fetchone()
            if found is None:
                versions = [r[0] for r in conn.execute("SELECT version FROM versions WHERE name = ?", (ref.name,))]
                raise VersionNotFound(
                    f"model {ref.name!r} has no version {ref.version}; its versions: {_ranges(versions)}"
                )
            return ref.version
        return int(latest)

    def _no_model(self, conn: sqlite3.Connection, name: str) -> str:
        names = [r[0] for r in conn.execute("SELECT DISTINCT name FROM versions ORDER BY name")]
        message = f"no model named {name!r} in the registry at {self.home}"
        if not names:
            return f"{message}, which is empty"
        close = difflib.get_close_matches(name, names, n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
        shown = ", ".join(names[:10]) + (f", … ({len(names)} in all)" if len(names) > 10 else "")
        return f"{message}; registered models: {shown}"

    def _info(self, conn: sqlite3.Connection, name: str, version: int) -> ModelInfo:
        row = conn.execute("SELECT * FROM versions WHERE name = ? AND version = ?", (name, version)).fetchone()
        aliases = conn.execute(
            "SELECT alias FROM aliases WHERE name = ? AND version = ? ORDER BY alias", (name, version)
        ).fetchall()
        return ModelInfo(
            name=row["name"],
            version=row["version"],
            flavor=row["flavor"],
            signature=Signature.from_dict(json.loads(row["signature"])),
            sha256=row["sha256"],
            size_bytes=row["size_bytes"],
            created_at=row["created_at"],
            aliases=tuple(a[0] for a in aliases),
            description=row["description"],
            metadata=json.loads(row["metadata"]),
            framework_versions=json.loads(row["framework_versions"]),
            flavor_options=json.loads(row["flavor_options"]),
            compiled=self.compiled.report_of(conn, name, version),
        )


def _point_alias(conn: sqlite3.Connection, name: str, alias: str, version: int, now: str) -> None:
    conn.execute(
        "INSERT INTO aliases (name, alias, version, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
        (name, alias, version, now),
    )


def _aliases_of(conn: sqlite3.Connection, name: str) -> dict[str, int]:
    rows = conn.execute("SELECT alias, version FROM aliases WHERE name = ? ORDER BY alias", (name,))
    return {row["alias"]: row["version"] for row in rows}


def signature_for(
    name: str,
    path: Path,
    flavor: Flavor,
    options: Mapping[str, Any],
    signature: Signature | Mapping[str, Any] | None,
    sample: object | None,
) -> Signature:
    """An explicit signature wins; otherwise the flavor's, with input names and types from `sample`."""
    if isinstance(signature, Signature):
        return signature
    if isinstance(signature, Mapping):
        return Signature.from_dict(signature)
    if signature is not None:
        raise InvalidSignature(
            f"signature= takes a foretell Signature or its dict form, got {type(signature).__name__}"
        )
    described = flavor.describe(path, options)
    if described is None:
        raise InvalidSignature(
            f"cannot register {name!r}: the {flavor.name} flavor reads no signature from {path.name}; "
            f"pass signature= (a Signature or its dict form). sample= names and types the inputs, "
            f"but only of a signature whose outputs the flavor can read"
        )
    return described if sample is None else signature_with_sample(described, sample)


def _to_json(what: str, value: Mapping[str, Any]) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"{what} must be JSON-serializable (no NaN or infinity): {exc}") from exc


def _ranges(versions: Sequence[int]) -> str:
    """`1-3, 5, 7-8`: a long history stays one readable line."""
    parts: list[str] = []
    ordered = sorted(versions)
    start = previous = ordered[0]
    for number in [*ordered[1:], None]:
        if number is not None and number == previous + 1:
            previous = number
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if number is not None:
            start = previous = number
    return ", ".join(parts)
