"""Keep one known-benign line of Ray's C++ core from reaching the user.

Ray Data creates every actor of an ActorPoolStrategy with its transformer and context passed
through the object store (`ray.put`) and `max_restarts=-1`, and Ray's core then logs, at error
level, that such an actor could not be restarted if those objects went out of scope (ray
issue 53727). Here they cannot: the running dataset holds them until it is done. The line
comes from C++ straight to file descriptor 2, so it is dropped there: while a run is on, fd 2
is a pipe read by a thread that forwards everything except lines holding BENIGN. Lines are
held back only when they look like a C++ log line (they start with "[") and only until their
newline; anything else passes at once (the progress line has no newline).
"""
from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
from collections.abc import Iterator

BENIGN = (b"has constructor arguments in the object store and max_restarts > 0",)
HOLD_SECONDS = 0.2


@contextlib.contextmanager
def drop_benign_lines(enabled: bool = True) -> Iterator[None]:
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    stop = threading.Event()
    reader = threading.Thread(target=_forward, args=(read_end, saved, stop), daemon=True)
    reader.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        stop.set()
        reader.join(timeout=5)
        os.close(read_end)
        os.close(saved)


def _forward(read_end: int, out: int, stop: threading.Event) -> None:
    pending = b""
    while True:
        ready, _, _ = select.select([read_end], [], [], HOLD_SECONDS)
        data = os.read(read_end, 65536) if ready else b""
        if ready and not data:
            break
        pending = _pass_through(pending + data, out, flush=not data)
        if stop.is_set() and not data:
            break
    if pending:
        _write_all(out, pending)


def _pass_through(data: bytes, out: int, flush: bool) -> bytes:
    """Write out `data` but for benign lines; returns an unfinished log line to hold back."""
    while data:
        if not data.startswith(b"["):
            cut = data.find(b"\n[")
            cut = len(data) if cut < 0 else cut + 1
            _write_all(out, data[:cut])
            data = data[cut:]
            continue
        end = data.find(b"\n")
        if end < 0:
            if not flush:
                return data
            _write_all(out, data)
            return b""
        line, data = data[:end + 1], data[end + 1:]
        if not any(marker in line for marker in BENIGN):
            _write_all(out, line)
    return b""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
