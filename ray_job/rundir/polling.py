"""The one background-thread helper: a thread that calls `tick()` every `interval` seconds
while a `with` block runs, and `tick(final=True)` once when it ends. A tick that returns False
stops the thread early (the final tick still comes). Progress lines, the driver's memory
samples, `--upload-every` and the lease's heartbeat are Pollers.

A tick that fails in the thread (a store that timed out renewing the lease) is tried again at
the next interval, silently: a thread never prints a traceback. The final tick runs in the
`with` block's thread, so its error is the block's; after a block that failed, it is tried
and its own error dropped (the block's error is the one that counts)."""
from __future__ import annotations

import logging
import threading

log = logging.getLogger("ray_job")


class Poller:
    interval: float = 1.0

    def tick(self, final: bool = False) -> bool | None:
        raise NotImplementedError

    def __enter__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"ray-embed-{type(self).__name__.lower()}")
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        self._thread.join()
        if exc_type is None:
            self.tick(final=True)
            return
        try:
            self.tick(final=True)
        except Exception as error:  # noqa: BLE001 - the block's own failure is reported
            log.debug("%s: final tick after a failure: %s", type(self).__name__, error)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if self.tick() is False:
                    return
            except Exception as error:  # noqa: BLE001 - tried again at the next interval
                log.debug("%s: tick failed: %s", type(self).__name__, error)
