"""Storage fault injection (test only): a schedule of `faults.StorageFaults` applied at the door.

`injected(plan)` makes every `Files` that `files.files_for` hands out while the block runs
consult an `Injector` before each operation; the injector raises, sleeps or lets the call go
as the plan's rules say. An injected fault is raised inside the door, so it takes exactly the
path a real one takes (files.py turns both into one `StorageError`).

The plan in force is held in a context variable, not a global: it is scoped to the `with`
block (and to the thread that entered it; a thread started inside sees none, except through a
`Files` made in the block). The driver's scope is entered once (cli.main for the environment's
plan, or a test's own `with injected(...)`); every Ray task that touches storage gets the
driver's plan as plain data (`active_plan()`) and enters it with `exactly=True`, so a worker
process never keeps a plan from an earlier task.

    with injected(StorageFaults((StorageFault(op="write", path="*/shards/*", fault="enospc",
                                              after=1, times=1),))):
        run(cfg)        # the second shard write in the run fails with ENOSPC, once
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import errno
import fnmatch
import hashlib
import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

from ..faults import FAULT_ERRNOS, NO_STORAGE_FAULTS, StorageFault, StorageFaults
from ..redact import redacting
from .scratch import private_dir

_ACTIVE: contextvars.ContextVar["Injector | None"] = contextvars.ContextVar(
    "ray_embed_storage_faults", default=None)


@contextlib.contextmanager
def injected(plan: StorageFaults, exactly: bool = False) -> Iterator[None]:
    """Storage faults of `plan` while the block runs. An empty plan leaves the one in force
    alone, unless `exactly` (a Ray task's entry: this plan, or none). On the driver (not
    `exactly`), a plan whose rules count calls and that has no `state_dir` gets a fresh one
    for the block: its counts are then the run's, across every task and replica on this
    machine (several machines need a `state_dir` they share)."""
    if not plan and not exactly:
        yield
        return
    with contextlib.ExitStack() as stack:
        if not exactly and plan.state_dir is None and any(map(_counts_calls, plan.rules)):
            folder = stack.enter_context(tempfile.TemporaryDirectory(
                prefix="counts-", dir=private_dir("faults")))
            plan = dataclasses.replace(plan, state_dir=folder)
        previous = _ACTIVE.get()
        _ACTIVE.set(Injector(plan) if plan else None)
        try:
            yield
        finally:
            _ACTIVE.set(previous)   # not a token reset: a generator may end in another context


def _counts_calls(rule: StorageFault) -> bool:
    return bool(rule.after) or rule.times is not None or rule.probability < 1.0


@contextlib.contextmanager
def in_task(plan: StorageFaults) -> Iterator[None]:
    """The body of a Ray task that touches storage: the driver's plan exactly (none when it
    has none), and the errors leaving it redacted (Ray formats them for the driver and its
    logs)."""
    with injected(plan, exactly=True), redacting():
        yield


def active_injector() -> "Injector | None":
    return _ACTIVE.get()


def active_plan() -> StorageFaults:
    """The plan in force here (what the driver sends its Ray tasks)."""
    injector = _ACTIVE.get()
    return injector.plan if injector else NO_STORAGE_FAULTS


def matches(rule: StorageFault, kind: str, op: str, path: str) -> bool:
    return rule.op in ("*", kind, op) and fnmatch.fnmatchcase(path, rule.path)


class Injector:
    """Decides, per storage operation, whether a rule of the plan fires, and does its fault."""

    def __init__(self, plan: StorageFaults, sleep=time.sleep):
        self.plan, self.sleep = plan, sleep
        self.counts = _Counts(plan.state_dir)

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


_ERROR_TYPES = {"unreachable": ConnectionRefusedError, "stall": TimeoutError}


class _Counts:
    """Named counters: `take(name)` returns how many times `name` was taken before. In memory
    (one injection scope), or, with `state_dir`, shared by every process of a run (each take
    creates one file there with O_EXCL: the n-th file made is the n-th take)."""

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
