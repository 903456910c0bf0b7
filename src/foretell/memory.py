"""Giving freed memory back to the system, so that a long-running server's RSS follows what it holds.

Two allocators keep what a server frees: Arrow's pool (the ledger's segments and compactions) and
glibc's malloc, which keeps free chunks in each thread's arena. In a ten-minute soak the server's
Python objects and malloc's in-use bytes stayed flat while malloc's free-but-kept bytes rose about
3 MB a minute (benchmarks/soak.py): RSS grew with nothing leaking. `malloc_trim` hands those pages back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable
from functools import cache

__all__ = ["release_free_memory"]


def release_free_memory() -> None:
    """Return the free pages Arrow's pool and glibc's arenas keep (each only where it is in use here)."""
    arrow = sys.modules.get("pyarrow")  # a process that never loaded pyarrow has nothing in its pool
    if arrow is not None:
        arrow.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`; None elsewhere (macOS, musl), where there is nothing to call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim
