"""Freed memory goes back to the system when the server asks (`foretell.memory`)."""

from __future__ import annotations

import os
import subprocess
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


MAPPED_AFTER_A_BIG_FREE = """
import ctypes, sys

import pyarrow

from foretell.memory import settle_serving_allocators


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "settled":
    settle_serving_allocators()
# Freeing a mapped 8 MiB block moves glibc's threshold up to 8 MiB: from then on, unless it is fixed,
# a 1 MiB block comes from the heap and stays with the process when freed.
libc.free(libc.malloc(8 * 2**20))
before = libc.mallinfo2().hblkhd
block = libc.malloc(2**20)
print(libc.mallinfo2().hblkhd - before, pyarrow.default_memory_pool().backend_name)
libc.free(block)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
@pytest.mark.parametrize(
    ("how", "env", "settled"),
    [("default", {}, False), ("settled", {}, True), ("settled", {"FORETELL_ALLOCATORS": "default"}, False)],
)
def test_a_settled_server_maps_big_blocks_on_their_own_after_a_bigger_one_was_freed(
    how: str, env: dict[str, str], settled: bool
) -> None:
    # A process of its own: the settings are the process's, for good.
    done = subprocess.run(
        [sys.executable, "-c", MAPPED_AFTER_A_BIG_FREE, how],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith(("ARROW_DEFAULT", "MALLOC_"))} | env,
    )
    assert done.returncode == 0, done.stderr
    grew, backend = done.stdout.split()
    assert (int(grew) >= 2**20) is settled
    assert (backend == "system") is settled  # Arrow's default (mimalloc, or jemalloc) keeps what is freed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_an_operators_own_arrow_pool_is_kept() -> None:
    environment = {**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "jemalloc"}
    done = subprocess.run(
        [sys.executable, "-c", MAPPED_AFTER_A_BIG_FREE, "settled"], capture_output=True, text=True, env=environment
    )
    assert done.returncode == 0, done.stderr
    grew, backend = done.stdout.split()
    assert backend == "jemalloc"
    assert int(grew) >= 2**20  # glibc's threshold is still fixed: only the pool was the operator's
