"""API keys in `FORETELL_HOME/keys.db`: each with a name, scopes and an optional rate limit, stored hashed.

A key reads `ftk_<id>_<secret>`. The id finds its row; the secret is kept only as its SHA-256
and compared in constant time. A secret of 32 random bytes needs no slow hash: nobody can guess
it, so the stored digest gives nothing away that brute force could use. The key itself is
shown once, when it is made; `keys list` shows names, scopes and ids, never secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from foretell.database import Database
from foretell.errors import InvalidInput, KeyBookError, NotFound

__all__ = ["SCOPES", "ApiKey", "KeyBook", "parse_token"]

SCOPES = ("predict", "events", "admin")
"""predict: infer, /invocations, metadata, lookups, batchGet; events: events and labels; admin: every scope."""

PREFIX = "ftk_"
_TOKEN = re.compile(r"^ftk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_UNKNOWN = hashlib.sha256(b"no key has this id").hexdigest()

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, digest TEXT NOT NULL, "
    "scopes TEXT NOT NULL, rate REAL, created_at TEXT NOT NULL, revoked_at TEXT)",
    # A name is one live key's: revoking frees it for the next.
    "CREATE UNIQUE INDEX IF NOT EXISTS keys_live_name ON keys (name) WHERE revoked_at IS NULL",
)
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ApiKey:
    """A key as the book knows it: everything but its secret."""

    id: str
    name: str
    scopes: tuple[str, ...]
    rate: float | None
    """Requests a second this key may make (its burst is one second's worth); None: no limit."""
    created_at: str
    revoked_at: str | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "id": self.id,
            "scopes": list(self.scopes),
            "rate": self.rate,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def parse_token(token: str | bytes) -> tuple[str, str] | None:
    """(id, secret) of a key in foretell's form, or None."""
    text = token.decode("ascii", "replace") if isinstance(token, bytes) else token
    found = _TOKEN.match(text)
    return (found.group(1), found.group(2)) if found else None


class KeyBook:
    """The keys of one FORETELL_HOME; safe to share between threads and processes."""

    def __init__(self, home: Path) -> None:
        self.path = home / "keys.db"
        self._db = Database(self.path, what="key book", error=KeyBookError, schema=_SCHEMA, version=SCHEMA_VERSION)

    @staticmethod
    def exists_in(home: Path) -> bool:
        return (home / "keys.db").is_file()

    def create(self, name: str, scopes: tuple[str, ...], *, rate: float | None = None) -> tuple[ApiKey, str]:
        """A new key and its token (shown once: the book keeps only the secret's digest)."""
        if not _NAME.match(name):
            raise InvalidInput(f"a key's name is 1 to 64 letters, digits, '.', '_' or '-', got {name!r}")
        unknown = sorted(set(scopes) - set(SCOPES))
        if not scopes or unknown:
            raise InvalidInput(f"scopes are {', '.join(SCOPES)} (one or more), got {list(scopes)!r}")
        if rate is not None and not rate > 0:
            raise InvalidInput(f"a key's rate limit is a positive number of requests a second, got {rate}")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        key = ApiKey(key_id, name, tuple(s for s in SCOPES if s in scopes), rate, _now())
        home = self.path.parent
        home.mkdir(parents=True, exist_ok=True)
        self._db.create_schema()
        try:
            with self._db.write() as conn:
                conn.execute(
                    "INSERT INTO keys (id, name, digest, scopes, rate, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (key.id, name, _digest(secret), ",".join(key.scopes), rate, key.created_at),
                )
        except KeyBookError as exc:
            if "UNIQUE" in str(exc.__cause__ or exc):
                raise InvalidInput(f"a key named {name!r} exists; revoke it first (foretell keys revoke)") from None
            raise
        return key, f"{PREFIX}{key_id}_{secret}"

    def listed(self, *, revoked: bool = False) -> list[ApiKey]:
        if not self.path.is_file():
            return []
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT id, name, scopes, rate, created_at, revoked_at FROM keys ORDER BY created_at, name"
            ).fetchall()
        found = [_key(row) for row in rows]
        return found if revoked else [key for key in found if key.revoked_at is None]

    def revoke(self, name: str) -> ApiKey:
        if not self.path.is_file():
            raise NotFound(f"no key named {name!r}: {self.path} holds no keys")
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT id, name, scopes, rate, created_at, revoked_at FROM keys WHERE name = ? AND revoked_at IS NULL",
                (name,),
            ).fetchone()
            if row is None:
                raise NotFound(f"no live key named {name!r} (foretell keys list shows them)")
            revoked_at = _now()
            conn.execute("UPDATE keys SET revoked_at = ? WHERE id = ?", (revoked_at, row[0]))
        return _key((*row[:5], revoked_at))

    def find(self, token: str | bytes) -> ApiKey | None:
        """The live key `token` is, or None; the secret compared in constant time, whether or not its id exists."""
        parsed = parse_token(token)
        if parsed is None or not self.path.is_file():
            return None
        key_id, secret = parsed
        with self._db.quick_read() as conn:
            row = conn.execute(
                "SELECT id, name, scopes, rate, created_at, revoked_at, digest FROM keys WHERE id = ?", (key_id,)
            ).fetchone()
        matches = hmac.compare_digest(_digest(secret), row[6] if row is not None else _UNKNOWN)
        if row is None or not matches or row[5] is not None:
            return None
        return _key(row[:6])


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _key(row: tuple[object, ...]) -> ApiKey:
    key_id, name, scopes, rate, created_at, revoked_at = row
    return ApiKey(
        str(key_id),
        str(name),
        tuple(str(scopes).split(",")),
        None if rate is None else float(rate),  # type: ignore[arg-type]
        str(created_at),
        None if revoked_at is None else str(revoked_at),
    )


def _now() -> str:
    return datetime.fromtimestamp(time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
