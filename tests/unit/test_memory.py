"""Freed memory goes back to the system when the server asks (`foretell.memory`)."""

from __future__ import annotations

import os
import sys

import pytest

from foretell.memory import release_free_memory


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_the_pages_malloc_keeps_after_frees_are_given_back() -> None:
    blocks = [bytearray(4000) for _ in range(50_000)]  # ~200 MB of malloc chunks (past pymalloc's 512 bytes)
    pinned = blocks[::50]  # one in fifty kept, spread over the heap: free() alone cannot shrink it from the top
    del blocks
    kept = rss_mb()
    release_free_memory()
    assert rss_mb() < kept - 100, "the freed chunks' pages stayed with the process"
    assert len(pinned) == 1000
