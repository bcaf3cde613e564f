"""Storage faults at the door: per operation, whether a rule of the plan fires, and its fault.

An injected fault is raised inside the door (ray_job/storage/files.py asks the hook inside
its error handling), so it takes exactly the path a real one takes.
"""
from __future__ import annotations

import errno
import fnmatch
import hashlib
import os
import threading
import time
from collections import Counter
from pathlib import Path

from .plan import FAULT_ERRNOS, StorageFault, StorageFaults

_ERROR_TYPES = {"unreachable": ConnectionRefusedError, "stall": TimeoutError}


def matches(rule: StorageFault, kind: str, op: str, path: str) -> bool:
    return rule.op in ("*", kind, op) and fnmatch.fnmatchcase(path, rule.path)


class Injector:
    """Decides, per storage operation, whether a rule of the plan fires, and does its fault."""

    def __init__(self, plan: StorageFaults, sleep=time.sleep):
        self.plan, self.sleep = plan, sleep
        self.counts = Counts(plan.state_dir)

    def before(self, kind: str, op: str, path: str) -> None:
        """Called by the door before operation `op` (of `kind`) on `path`."""
        for index, rule in enumerate(self.plan.rules):
            if matches(rule, kind, op, path) and self._fires(index, rule, path):
                self._do(rule, op, path)
                return

    def _fires(self, index: int, rule: StorageFault, path: str) -> bool:
        if self.counts.take(f"match-{index}") < rule.after:
            return False
        if rule.probability < 1.0:
            occurrence = self.counts.take(f"path-{index}-{_digest(path)}")
            if _uniform(rule.seed, index, path, occurrence) >= rule.probability:
                return False
        return rule.times is None or self.counts.take(f"fired-{index}") < rule.times

    def _do(self, rule: StorageFault, op: str, path: str) -> None:
        if rule.seconds:
            self.sleep(rule.seconds)
        if rule.fault == "latency":
            return
        code = getattr(errno, FAULT_ERRNOS[rule.fault])
        raise _ERROR_TYPES.get(rule.fault, OSError)(
            code, f"{os.strerror(code)} (injected: {rule.fault} at {op})", path)


class Counts:
    """Named counters: `take(name)` returns how many times `name` was taken before. In memory
    (one process), or, with `state_dir`, shared by every process of a run (each take creates
    one file there with O_EXCL: the n-th file made is the n-th take)."""

    def __init__(self, state_dir: str | None):
        self.state_dir = Path(state_dir) if state_dir else None
        self.memory: Counter = Counter()
        self.lock = threading.Lock()

    def take(self, name: str) -> int:
        if self.state_dir is None:
            with self.lock:
                self.memory[name] += 1
                return self.memory[name] - 1
        self.state_dir.mkdir(parents=True, exist_ok=True)
        n = len(list(self.state_dir.glob(f"{name}.*")))
        while True:
            try:
                os.close(os.open(self.state_dir / f"{name}.{n}", os.O_CREAT | os.O_EXCL, 0o600))
                return n
            except FileExistsError:
                n += 1


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def _uniform(seed: int, index: int, path: str, occurrence: int) -> float:
    """A number in [0, 1) fixed by its arguments (the same on every machine and run)."""
    key = f"{seed}\0{index}\0{path}\0{occurrence}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2.0**64
