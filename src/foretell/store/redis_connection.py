"""What the Redis backends share: the client, its failures as `StoreError`s, and Lua they both run.

The prediction store (`store/redis.py`) and the entity store (`store/entities_redis.py`)
open a server the same way, fail the same way, and name the server the same way in
their messages (without its password); each says which store it is.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from foretell.errors import MissingExtra, StoreError

if TYPE_CHECKING:
    from types import ModuleType

    import redis

__all__ = ["HMGET_SLICES", "RedisConnection", "redacted"]

# A Lua function for a script whose ARGV[2..] are the keys to read: `fetch(hash)`, each
# key's value in the hash or false, in order. HMGET goes in slices because Lua's unpack
# stops at about 8,000 values.
HMGET_SLICES = """
local function fetch(hash)
  local out, last = {}, #ARGV
  for i = 2, last, 4000 do
    local got = redis.call('HMGET', hash, unpack(ARGV, i, math.min(i + 3999, last)))
    for j = 1, #got do out[#out + 1] = got[j] end
  end
  return out
end
"""


class RedisConnection:
    """A redis-py client for the `what` (e.g. "prediction store") at `url`, checked by a PING."""

    def __init__(self, url: str, what: str) -> None:
        self.what = what
        self.where = redacted(url)
        self.module = _import_redis(what)
        try:
            # A host that drops packets should fail in seconds, not hang a batch job; the URL
            # can still say otherwise (`?socket_connect_timeout=`).
            self.client: redis.Redis = self.module.Redis.from_url(url, socket_connect_timeout=10)
        except ValueError as exc:
            raise StoreError(f"{self.where} is not a Redis URL: {exc}") from None

    def ping(self) -> None:
        """Fail at opening, as the SQLite stores do, rather than at the first request."""
        with self.talking():
            self.client.ping()

    @contextmanager
    def talking(self) -> Iterator[None]:
        """Redis's errors as the store's, naming the server; not its traceback, which says nothing more."""
        errors = self.module.exceptions
        try:
            yield
        except (errors.ConnectionError, errors.TimeoutError) as exc:
            raise StoreError(f"cannot reach the Redis {self.what} at {self.where}: {exc}") from None
        except errors.RedisError as exc:
            raise StoreError(f"the Redis {self.what} at {self.where} refused: {exc}") from None


def redacted(url: str) -> str:
    """`url` without its password, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{parts.netloc.rpartition('@')[2]}"))


def _import_redis(what: str) -> ModuleType:
    try:
        return importlib.import_module("redis")
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] != "redis":
            raise  # redis is there but one of its own imports broke: show that, not a wrong hint
        missing = MissingExtra("redis", "redis", "redis")
        # MissingExtra words its message for flavors; this is a store backend. (ImportError
        # prints `msg`, other code reads `args`.)
        missing.msg = (
            f"the Redis {what} needs the 'redis' package, which is not installed; "
            "install it with: pip install 'foretell[redis]'"
        )
        missing.args = (missing.msg,)
        raise missing from None
