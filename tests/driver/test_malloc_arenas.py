"""The driver caps glibc's malloc arenas before Ray starts its threads (session/malloc.py)."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest

PROBE = r"""
import ctypes, sys, threading
from ray_job.session.malloc import bound_malloc_arenas
if sys.argv[1] == "capped":
    assert bound_malloc_arenas(2)
kept, gate = [], threading.Barrier(8)
def work():
    gate.wait()                              # all eight allocate at once: contention -> arenas
    kept.extend(ctypes.create_string_buffer(32_000) for _ in range(200))
threads = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in threads]; [t.join() for t in threads]
libc = ctypes.CDLL(None)
sys.stdout.flush()
libc.malloc_info(0, ctypes.c_void_p.in_dll(libc, "stdout"))
libc.fflush(None)
"""


def heaps(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         check=True).stdout
    return out.count("<heap nr=")


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="glibc's arenas")
def test_capped_driver_uses_at_most_two_arenas_however_many_threads_allocate():
    assert heaps("capped") <= 2
    assert heaps("default") > 2          # the same threads without the cap spread over more
