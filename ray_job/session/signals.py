"""SIGTERM and SIGINT on the driver: a `Stopped` exception in the main thread, once.

`ray job stop` sends SIGTERM. Ray's driver gets, from ray.init, a Python handler that exits
at once and, from its C++ core worker, a failure-signal handler (abseil's) that prints
`*** SIGTERM received at time=... PC: @ ...` with a stack dump to stderr before chaining to
the Python one (measured: 13 lines, the `with` blocks never unwound). `stop_on_signals`
installs one Python handler for both signals, and `ray_session` installs it again right after
ray.init, which replaces both of Ray's (a Python handler is installed with sigaction, so the
C++ one is no longer called). The handler raises `Stopped` the first time; a second signal
while the driver unwinds is ignored, so the lease is released and Ray shut down.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from ..errors import Stopped

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _stop(signum, frame) -> None:
    for sig in SIGNALS:                    # once: unwinding must not be cut short
        signal.signal(sig, signal.SIG_IGN)
    raise Stopped(signum)


def install_stop_handlers() -> bool:
    """Our handler for SIGTERM and SIGINT (from the main thread only); False elsewhere."""
    if threading.current_thread() is not threading.main_thread():
        return False
    for sig in SIGNALS:
        signal.signal(sig, _stop)
    return True


def stopping_handlers_installed() -> bool:
    return signal.getsignal(signal.SIGTERM) is _stop


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT raise `Stopped`; the handlers it found are
    put back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.getsignal(sig) for sig in SIGNALS}
    install_stop_handlers()
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
