"""The one background-thread helper: a thread that calls `tick()` every `interval` seconds
while a `with` block runs, and `tick(final=True)` once when it ends. A tick that returns False
stops the thread early (the final tick still comes). Progress lines, the driver's memory
samples, `--upload-every` and the lease's heartbeat are Pollers."""
from __future__ import annotations

import threading


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

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.tick(final=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if self.tick() is False:
                return
