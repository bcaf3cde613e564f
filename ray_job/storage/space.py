"""Free space on a local disk, checked before a large local file is written where that is
cheap: a full disk is then one line before any byte is written, not a failure half way."""
from __future__ import annotations

import errno
import shutil
from pathlib import Path

from .failures import StorageError

MARGIN_BYTES = 16 * 2**20           # metadata, and what others write meanwhile


def require_space(folder: Path, needed: int, where: str) -> None:
    """StorageError (ENOSPC) naming `where` when `folder`'s disk has less than `needed`
    bytes (plus a margin) free."""
    free = shutil.disk_usage(folder).free
    if free < needed + MARGIN_BYTES:
        raise StorageError(errno.ENOSPC, f"No space left on device (needs about "
                                         f"{_mib(needed + MARGIN_BYTES)}, {_mib(free)} free)",
                           where, "write")


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"
