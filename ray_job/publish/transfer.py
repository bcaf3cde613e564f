"""What every publishing target shares: checksums, the result record, retries with backoff."""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LeaseLost, UserError
from ..storage.failures import StorageError

ATTEMPTS = 5


def no_check() -> None:
    """A target's `before_commit` when no run's lease fences it."""


@dataclass
class UploadResult:
    destination: str
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_blob_sha1(path: Path) -> str:
    """The id git (and so the Hub) gives a file's content: sha1 of "blob <size>\\0" + bytes."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def transient(exc: BaseException) -> bool:
    """Worth another attempt: a dropped connection, a timeout, a 5xx or 429 answer."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is not None:
        return status >= 500 or status == 429
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return False
    return isinstance(exc, (OSError, ConnectionError, TimeoutError, StorageError))


def with_retries(action: Callable[[], object], what: str,
                 sleep: Callable[[float], None] = time.sleep):
    """Run `action`, again after 1, 2, 4, 8 s while it fails transiently; a permanent
    failure (or the last one) becomes a one-line UserError."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return action()
        except LeaseLost:                    # the run's fence: stop, as it says
            raise
        except Exception as exc:  # noqa: BLE001 - sorted by `transient`, else one line
            if not transient(exc):
                raise UserError(f"upload of {what} refused: {one_line(exc)}") from None
            if attempt == ATTEMPTS:
                raise UserError(f"upload of {what} failed after {ATTEMPTS} attempts: "
                                f"{one_line(exc)}") from None
            sleep(min(30.0, 0.5 * 2 ** attempt))


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
