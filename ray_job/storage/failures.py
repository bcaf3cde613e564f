"""What a failure of the storage looks like above the door: one StorageError naming the
operation and the file, whatever raised it (the OS, botocore, aiohttp, fsspec...).

Errors that say something about the file, which callers act on (not found, exists, denied),
keep their own types. Anything else the OS or a storage backend raises is a failure of the
storage. Files opened for reading are handed out `guarded`: a read that fails half way
through a file (a dropped connection, a timeout) is the same StorageError, not a backend's
exception that a caller might take for damaged data.
"""
from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator

from ..redact import redact_text


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# errors that say something about the file, which callers act on: never a StorageError
MEANINGFUL = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
              PermissionError)
# the backends whose own exception types mean "the storage failed" (not a bug of ours)
BACKENDS = frozenset({"botocore", "aiobotocore", "aiohttp", "s3fs", "gcsfs", "google",
                      "requests", "urllib3", "httpx", "huggingface_hub", "fsspec"})
VERBS = {"stat": "look up", "list": "list", "read": "read", "open": "open", "write": "write",
         "move": "move", "remove": "remove"}


class StorageError(Exception):
    """A storage operation failed: a full disk, an I/O error, a store that is unreachable or
    timed out after its retries. `op`: the kind of operation; `filename`: where (a local path,
    or a URL with its credentials masked); `errno`: the OS's code (ENOSPC, ...), or EIO /
    ECONNREFUSED / ETIMEDOUT for a backend's error; `strerror`: why.

    Not an OSError, on purpose: readers take an OSError met while decoding a file for damage
    to that file (a gzip cut short, a Parquet row group that does not decode) and reject its
    rows; a store that failed to answer must fail the run instead (it is resumable), never
    turn rows into rejects."""

    def __init__(self, code: int, reason: str, where: str, op: str):
        super().__init__(code, reason, where, op)
        self.errno, self.strerror, self.filename, self.op = code, reason, where, op

    def __str__(self) -> str:
        return f"cannot {VERBS.get(self.op, self.op)} {self.filename}: {self.strerror}"

    def __reduce__(self):   # from a Ray worker to the driver (Ray Data may append to args)
        return type(self), (self.errno, self.strerror, self.filename, self.op)


def is_storage_failure(exc: BaseException) -> bool:
    if isinstance(exc, StorageError):
        return True
    if isinstance(exc, MEANINGFUL):
        return False
    if isinstance(exc, OSError):
        return True
    return any(k.__module__.split(".")[0] in BACKENDS for k in type(exc).__mro__)


def storage_error(exc: BaseException, op: str, where: str) -> StorageError:
    """`exc` as a StorageError naming `where` (its message redacted)."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, OSError) and exc.errno:
        code, reason = exc.errno, exc.strerror or os.strerror(exc.errno)
    else:
        name = type(exc).__name__
        code = (errno.ETIMEDOUT if "Timeout" in name else
                errno.ECONNREFUSED if "Connect" in name else errno.EIO)
        reason = f"{name}: {first_line(exc)}"
    return StorageError(code, redact_text(reason), where, op)



class Guarded:
    """A file object whose failing reads (and seeks) are StorageErrors naming the file; all
    else is the file's own. `before(method)`, when given, is asked before each read (the
    storage door's test hook: a fault can strike half way through a file)."""

    def __init__(self, inner, where: str, before=None):
        self._inner, self._where, self._before = inner, where, before
        self.failure: StorageError | None = None    # the last one raised (see `reraising`)

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def _guard(self, name, *args):
        try:
            if self._before is not None and name != "seek":
                self._before(name)
            return getattr(self._inner, name)(*args)
        except Exception as exc:
            if not is_storage_failure(exc):
                raise
            self.failure = storage_error(exc, "read", self._where)
            raise self.failure from exc

    def read(self, *args):
        return self._guard("read", *args)

    def read1(self, *args):
        return self._guard("read1", *args)

    def readinto(self, *args):
        return self._guard("readinto", *args)

    def readline(self, *args):
        return self._guard("readline", *args)

    def seek(self, *args):
        return self._guard("seek", *args)

    def __iter__(self):
        return iter(self.readline, b"")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._inner.close()


def guarded(inner, where: str, before=None) -> Guarded:
    return Guarded(inner, where, before)


@contextlib.contextmanager
def reraising(file: Guarded) -> Iterator[Guarded]:
    """While the block reads `file` through a library that wraps what a Python file raises
    (pyarrow: an ArrowIOError "Failed to read message body ... Python exception"), an error
    leaving the block after `file` failed is that StorageError, never taken for damage (a
    shard quarantined as corrupt because the store did not answer)."""
    try:
        yield file
    except Exception as exc:
        if file.failure is None or isinstance(exc, StorageError):
            raise
        raise file.failure from exc
