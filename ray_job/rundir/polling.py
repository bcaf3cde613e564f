"""A background thread that calls `tick()` every `interval` seconds while a `with` block runs,
and `tick(final=True)` once when it ends."""
from __future__ import annotations

import threading


class Poller:
    interval: float = 1.0

    def tick(self, final: bool = False) -> None:
        raise NotImplementedError

    def __enter__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.tick(final=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()
