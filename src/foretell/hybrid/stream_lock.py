"""One process at a time consumes a stream as a given consumer of its group, on one host.

A consumer group hands each entry to one consumer, but two consumers may hold two events
about the same key at once and apply them in either order: the second rating of a film
could be overwritten by the first. So `serve --workers N --events-from ...` does not run N
consumers: one worker holds this lock and consumes, the others stand by and take over if
it dies (the kernel drops an flock with its process, so a kill -9 frees it at once).
`foretell events consume` run twice on a host with the same consumer name waits the same way.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from pathlib import Path

from foretell.store.redis_stream import StreamAddress

__all__ = ["ConsumerLock"]


class ConsumerLock:
    """An exclusive, non-blocking flock on a file named after the stream, the group and the consumer."""

    def __init__(self, address: StreamAddress, folder: Path | None = None) -> None:
        identity = "\n".join((address.server, address.stream, address.group, address.consumer))
        digest = hashlib.blake2b(identity.encode(), digest_size=10).hexdigest()
        self.path = (folder or Path(tempfile.gettempdir())) / f"foretell-events-{digest}.lock"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_take(self) -> bool:
        """Take the lock if no other process holds it; True when this process holds it now."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops its flock
            self._fd = None
