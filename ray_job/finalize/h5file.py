"""The local HDF5 file a merge writes, opened so that a write failure is one error, never a
crash.

HDF5 (2.0, through h5py 3.16) does not survive a failed write: after ENOSPC its close flushes
the metadata and the raw-data chunk cache, fails again and leaves the file half closed, and the
library's own clean-up at interpreter exit then dies with a segmentation fault (measured on a
1 MiB tmpfs: every way of closing after the error, or not closing, ends in SIGSEGV). So when
anything fails while the file is open, its file descriptor is first pointed at /dev/null
(`os.dup2`): HDF5 then closes cleanly, writing into nothing, and the temp file is removed by
its owner (RunDir.results.writer). A failure of the storage is raised as one StorageError
naming the result, not HDF5's multi-line error stack.
"""
from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import h5py

from ..storage.failures import StorageError


@contextlib.contextmanager
def new_h5(path: Path, where: str) -> Iterator[h5py.File]:
    """An HDF5 file created at `path` (a temp name), closed when the block ends; any failure
    (in the block or at close) abandons it safely; an OSError of HDF5 becomes a StorageError
    naming `where` (what the file will be)."""
    try:
        h5 = h5py.File(path, "w")
    except OSError as exc:
        raise _storage_error(exc, where) from exc
    fd = h5.id.get_vfd_handle()
    opened = _identity(fd)
    try:
        yield h5
        h5.close()
    except BaseException as exc:
        _abandon(h5, fd if _identity(fd) == opened else None)
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise _storage_error(exc, where) from exc
        raise


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        info = os.fstat(fd)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _abandon(h5: h5py.File, fd: int | None) -> None:
    """Close `h5` whatever state a failure left it in: its writes from now on go nowhere
    (`fd`: its descriptor, None when HDF5 no longer holds it)."""
    if fd is not None:
        null = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)
    with contextlib.suppress(Exception):
        if h5.id.valid:
            h5.close()


def _storage_error(exc: OSError, where: str) -> StorageError:
    code = exc.errno or errno.EIO
    return StorageError(code, os.strerror(code), where, "write")
