"""Free space on a local disk, checked before a large local file is written where that is
cheap: a full disk is then one line before any byte is written, not a failure half way.

The check never refuses what fits: beyond the bytes asked for it keeps a margin proportional
to them (HDF5's chunk index and metadata grow with the file: 1/64 of it is generous) and a few
of the filesystem's own blocks (each allocation is rounded to a block; the file's other small
datasets and attributes). A write that still meets a full disk fails as it always did (one
line, nothing partial left: `finalize.h5file`)."""
from __future__ import annotations

import errno
import os
from pathlib import Path

from .failures import StorageError

MARGIN_FRACTION = 1 / 64          # of the bytes asked for
SLACK_BLOCKS = 64                 # filesystem blocks (256 KiB of 4 KiB blocks)


def margin(needed: int, block_size: int) -> int:
    """What the check keeps free beyond `needed` bytes on a filesystem of `block_size`."""
    return int(needed * MARGIN_FRACTION) + SLACK_BLOCKS * block_size


def require_space(folder: Path, needed: int, where: str) -> None:
    """StorageError (ENOSPC) naming `where` when `folder`'s disk has less than `needed`
    bytes and the margin free (for this user: blocks reserved for root are not counted)."""
    disk = os.statvfs(folder)
    free = disk.f_bavail * disk.f_frsize
    wanted = needed + margin(needed, disk.f_frsize)
    if free < wanted:
        raise StorageError(errno.ENOSPC, f"No space left on device (needs about "
                                         f"{_size(wanted)}, {_size(free)} free)",
                           where, "write")


def _size(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n >= 2**20 else f"{n / 2**10:,.0f} KiB"
