"""Giving freed memory back to the system, so that a long-running server's RSS follows what it holds.

Two allocators keep what a server frees: Arrow's pool (the ledger's segments and compactions) and
glibc's malloc, which keeps free chunks in each thread's arena. In a ten-minute soak the server's
Python objects and malloc's in-use bytes stayed flat while malloc's free-but-kept bytes rose about
3 MB a minute (benchmarks/soak.py): RSS grew with nothing leaking. `malloc_trim` hands those pages back.

A server also settles its allocators once, at start (`settle_serving_allocators`). Arrow's default pool,
mimalloc, kept 16 to 59 MiB of pages resident between the ledger's compactions while its own count of
allocated bytes was 0; and glibc's moving mmap threshold, once a compaction's buffer was freed, put
the next ones inside the thread arenas, which then grew in steps and stayed grown. Over ten minutes of
soak these two made the RSS climb about 10 % before it levelled off (docs/benchmarks.md, "Soak").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable
from functools import cache

__all__ = [
    "ALLOCATORS_ENV",
    "ALLOCATOR_CHOICES",
    "SERVING_MMAP_THRESHOLD",
    "release_free_memory",
    "settle_serving_allocators",
]

ALLOCATORS_ENV = "FORETELL_ALLOCATORS"
"""`settled` (unset: the same) or `default`, which leaves a server's allocators as the libraries set them
(benchmarks/allocators.py compares the two)."""
ALLOCATOR_CHOICES = ("settled", "default")

SERVING_MMAP_THRESHOLD = 128 * 1024
"""glibc's own starting value. Setting it fixes it: allocations this big or bigger are mapped on their
own and unmapped when freed, however big the last freed one was."""
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h


def release_free_memory() -> None:
    """Return the free pages Arrow's pool and glibc's arenas keep (each only where it is in use here)."""
    arrow = sys.modules.get("pyarrow")  # a process that never loaded pyarrow has nothing in its pool
    if arrow is not None:
        arrow.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def settle_serving_allocators() -> None:
    """For a long-running server: Arrow allocates through malloc, and malloc maps big blocks on their own.

    Each big buffer (a compaction's segments, a batch of rows) then goes back to the system when it is
    freed, so the server's RSS follows what it holds rather than the peaks it has had. Batch jobs keep
    Arrow's faster default: they end, and give everything back then. An operator's own choice wins:
    `ARROW_DEFAULT_MEMORY_POOL` keeps Arrow's pool, `MALLOC_MMAP_THRESHOLD_` glibc's threshold, and
    `FORETELL_ALLOCATORS=default` both.
    """
    choice = os.environ.get(ALLOCATORS_ENV) or "settled"
    if choice not in ALLOCATOR_CHOICES:
        raise ValueError(f"{ALLOCATORS_ENV}: expected one of {', '.join(ALLOCATOR_CHOICES)} (or unset), got {choice!r}")
    if choice == "default":
        return
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        import pyarrow

        pyarrow.set_memory_pool(pyarrow.system_memory_pool())
    mallopt = _mallopt()
    if mallopt is not None and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        mallopt(_M_MMAP_THRESHOLD, SERVING_MMAP_THRESHOLD)


@cache
def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's `mallopt`; None elsewhere (macOS, musl)."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return None
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt


@cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`; None elsewhere (macOS, musl), where there is nothing to call."""
    libc = _libc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return None
    trim = libc.malloc_trim
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim
