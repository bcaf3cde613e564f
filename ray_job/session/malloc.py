"""Keep the driver's native heap from growing with the length of a run.

The driver's Python heap stays flat through a run (tracemalloc: 31 MiB from the first shard to
the last of a 100k-row run), yet its RSS grew: glibc gives each new thread that allocates an
arena of its own (up to 8 per core), and Ray's core-worker and gRPC threads, handing buffers
to one another, leave freed memory spread over many of them. Measured on a 400k-row run (2-core
AMD EPYC, tiny model, benchmarks/README.md): +6 MiB over the encode phase with glibc's default,
+2 MiB with two arenas. Set before `ray.init` starts those threads.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_ARENA_MAX = -8      # glibc's mallopt parameter number (malloc.h)
DRIVER_ARENAS = 2


def bound_malloc_arenas(arenas: int = DRIVER_ARENAS) -> bool:
    """Cap this process's glibc malloc arenas; False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        _ = libc.gnu_get_libc_version       # glibc only: musl and macOS have no such symbol
    except (OSError, AttributeError, TypeError):
        return False
    return mallopt(M_ARENA_MAX, arenas) == 1
