"""One driver per run directory: a lease object in the run directory, created atomically
(O_EXCL locally, a conditional PUT in an object store), renewed by a heartbeat thread and
removed on exit. A lease whose heartbeat stopped (or whose driver process is gone, on this
host) is stale and may be taken over; a live one makes a second driver stop with one line.
"""
from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass

from ..errors import UserError
from .polling import Poller

HEARTBEAT_S = 10.0
STALE_AFTER_S = 6 * HEARTBEAT_S


@dataclass(frozen=True)
class LeaseRecord:
    owner: str
    host: str
    pid: int
    started: float
    heartbeat: float

    @classmethod
    def mine(cls) -> LeaseRecord:
        now = time.time()
        return cls(uuid.uuid4().hex, socket.gethostname(), os.getpid(), now, now)

    def encoded(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    def is_stale(self, now: float) -> bool:
        if now - self.heartbeat > STALE_AFTER_S:
            return True
        return self.host == socket.gethostname() and not _pid_alive(self.pid)

    def describe(self, now: float) -> str:
        return (f"host {self.host}, pid {self.pid}, last heartbeat "
                f"{max(0, now - self.heartbeat):.0f} s ago")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Lease(Poller):
    """Context manager holding the lease `name` in `store` while a driver works: taken when
    the block starts, renewed every `heartbeat_s` by the poller's thread (until another
    driver has taken it over), released when the block ends."""

    def __init__(self, store, name: str, where: str, heartbeat_s: float = HEARTBEAT_S):
        self.store, self.name, self.where, self.interval = store, name, where, heartbeat_s
        self.record = LeaseRecord.mine()

    def __enter__(self) -> Lease:
        self._acquire()
        return super().__enter__()

    def tick(self, final: bool = False) -> bool:
        """Renew the heartbeat; at the end, release the lease (if still ours). False: it was
        taken over, stop renewing."""
        mine = self._holder() == self.record.owner
        if final and mine:
            self.store.remove(self.name)
        elif mine:
            beat = LeaseRecord(**{**asdict(self.record), "heartbeat": time.time()})
            self.store.write_bytes(self.name, beat.encoded())
        return mine

    def _acquire(self) -> None:
        for _ in range(2):
            if self.store.create_exclusive(self.name, self.record.encoded()):
                return
            current = self._read()
            now = time.time()
            if current is not None and not current.is_stale(now):
                raise UserError(f"{self.where} is in use by another ray-embed driver "
                                f"({current.describe(now)}); wait for it to finish or stop it")
            self.store.remove(self.name)           # stale (or unreadable): take it over
        raise UserError(f"{self.where}: could not take the run's lease (another driver "
                        f"is starting); try again")

    def _read(self) -> LeaseRecord | None:
        try:
            return LeaseRecord(**json.loads(self.store.read_text(self.name)))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def _holder(self) -> str | None:
        current = self._read()
        return current.owner if current else None
