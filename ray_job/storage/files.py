"""The one door to stored files, on a local disk or in an object store (s3://, gs://, hf://,
https://, file://, ...).

Every operation ray_job does on a stored file (the run directory, the inputs, a --previous run,
a publishing target) is a method of `Files`, and `files_for(location)` is the one place a
`Files` is made.

Local paths get plain os calls (a temp file renamed into place, O_EXCL, memory maps); URLs get
fsspec, whose protocol dispatch picks the backend, with credentials and endpoints from each
backend's usual places (AWS_* variables and ~/.aws for s3://, HF_TOKEN and HF_ENDPOINT for
hf://, FSSPEC_<PROTOCOL>_<OPTION> variables for any storage option), and the timeouts and
retry counts of `timeouts.py`. A `Files` is made where it is used: Ray tasks are sent URLs,
never one of these.

Every method is one kind of operation (stat, list, read, open, write, move, remove). A
failure of the storage itself (a full disk, an I/O error, a store unreachable or timing out
after its retries), raised by the OS or by a backend, leaves the door as one `StorageError`
naming the operation and the file (credentials masked); "not found", "exists" and "denied"
keep their own types, which callers act on. Before every operation the door asks the test
hook (`hooks.before_storage`; nothing in production), inside the same error handling: an
injected fault travels the path of a real one, on the same read paths production takes.
"""
from __future__ import annotations

import contextlib
import functools
import io
import os
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from .. import hooks
from ..errors import UserError
from ..redact import redact_text, redact_url
from .failures import first_line, guarded, is_storage_failure, reraising, storage_error
from .timeouts import bound_retries, storage_options

STREAM_BUFFER_BYTES = 8 * 1024 * 1024      # one ranged request per this many bytes read
# info() fields that change when a stored file is replaced, the first one present is used
VERSION_FIELDS = ("ETag", "etag", "blob_id", "md5Hash", "generation", "mtime",
                  "LastModified", "Last-Modified", "updated")


def is_url(path: str) -> bool:
    """True for anything with a protocol (s3://, file://, simplecache::s3://...)."""
    from fsspec.core import split_protocol

    return split_protocol(str(path))[0] is not None


def url_path(url: str) -> str:
    """The path part of a URL (no query string): what its file type is told from."""
    return urlsplit(url).path


def files_for(location: str) -> tuple[Files, str]:
    """The files `location` (a local path or a URL) is on, and its path there; a URL whose
    backend is not installed, or of an unknown protocol, is a one-line UserError."""
    from fsspec.core import url_to_fs

    try:
        fs, path = url_to_fs(location, **storage_options(location))
    except (ImportError, ValueError) as exc:
        raise UserError(redact_text(f"cannot read {location}: {first_line(exc)}")) from None
    bound_retries(fs)
    return Files(fs), path


def operation(kind: str, where_arg: int = 0):
    """A Files method of this kind of operation: the test hook asked first for each path, a
    failure of the storage raised as a StorageError naming the file (the method's
    `where_arg`-th argument: a path, or a list of paths)."""
    def wrap(method):
        @functools.wraps(method)
        def call(self, *args, **kwargs):
            where = args[where_arg]
            paths = [str(p) for p in where] if isinstance(where, (list, tuple)) else [str(where)]
            try:
                for path in paths:
                    hooks.before_storage(kind, method.__name__, path)
                return method(self, *args, **kwargs)
            except Exception as exc:
                if not is_storage_failure(exc):
                    raise
                raise storage_error(exc, kind, self.where(paths[0])) from exc
        call.kind = kind
        return call
    return wrap


def stored_version(info: dict) -> str:
    """What changes when a stored file is replaced, from its info (empty: nothing says)."""
    return next((str(info[k]) for k in VERSION_FIELDS if info.get(k)), "")


class Files:
    """The operations on one filesystem; paths are its own (see `files_for`). Whole-file
    writes appear complete or not at all: locally a temp file is renamed into place, and an
    object store's PUT is all-or-nothing already."""

    def __init__(self, fs):
        from fsspec.implementations.local import LocalFileSystem

        self.fs = fs
        self.local = isinstance(fs, LocalFileSystem)

    # ---- what is there --------------------------------------------------------------------

    def url(self, path: str) -> str:
        """The URL of a path a listing gave."""
        return self.fs.unstrip_protocol(path)

    def where(self, path: str) -> str:
        """How messages name a path: itself locally, else its URL without credentials."""
        return path if self.local else redact_url(self.url(path))

    @operation("stat")
    def info(self, path: str) -> dict:
        return self.fs.info(path)

    @operation("stat")
    def version(self, path: str) -> str:
        """What changes when the file is replaced: its mtime (ns) locally, else the store's
        version field."""
        if self.local:
            return str(os.stat(path).st_mtime_ns)
        return stored_version(self.fs.info(path))

    @operation("stat")
    def identity(self, path: str) -> tuple[int, str]:
        """(size, version) of the file now, not from a cached listing: one stat locally, one
        HEAD in a store; FileNotFoundError when it is gone."""
        if self.local:
            st = os.stat(path)
            return st.st_size, str(st.st_mtime_ns)
        self.fs.invalidate_cache(path)
        info = self.fs.info(path)
        return int(info["size"]), stored_version(info)

    @operation("stat")
    def is_file(self, path: str) -> bool:
        """Whether a file is there now (not from a cached listing)."""
        self.fs.invalidate_cache(path.rsplit("/", 1)[0])
        try:            # not fs.isfile, which answers False for a store that failed to answer
            return self.fs.info(path)["type"] == "file"
        except FileNotFoundError:
            return False

    @operation("list")
    def sizes(self, pattern: str) -> dict[str, int]:
        """path -> size of the files matching a glob pattern now (not a cached listing)."""
        self.fs.invalidate_cache(pattern.rsplit("/", 1)[0])
        try:
            found = self.fs.glob(pattern, detail=True)
        except FileNotFoundError:
            return {}
        return {p: int(info["size"]) for p, info in found.items() if info["type"] == "file"}

    @operation("list")
    def listing(self, path: str, directory: bool, recursive: bool = False) -> list[dict]:
        """Entries (name, size, type) of a directory (at any depth when `recursive`), or the
        matches of a glob pattern when `path` is not a directory."""
        if directory:
            self.fs.invalidate_cache(path)
        if directory and recursive:
            return list(self.fs.find(path, detail=True).values())
        if directory:
            return self.fs.ls(path, detail=True)
        return list(self.fs.glob(path, detail=True).values())

    # ---- reading ----------------------------------------------------------------------------

    @operation("read")
    def read(self, path: str) -> bytes:
        return self.fs.cat_file(path)

    @operation("read")
    def read_many(self, paths: list[str]) -> dict[str, bytes]:
        """path -> bytes, fetched concurrently from an object store (one round of requests)."""
        if self.local or len(paths) == 1:
            return {p: self.fs.cat_file(p) for p in paths}
        return self.fs.cat(paths)

    @operation("open")
    def open_stream(self, path: str, buffer_bytes: int = STREAM_BUFFER_BYTES):
        """A binary file for sequential reading (seek, read, readline): plain open() locally;
        in a store one ranged request per `buffer_bytes` read, never a whole-file download."""
        if self.local:
            return open(path, "rb")
        return self._reading(io.BufferedReader(self.fs.open(path, "rb", cache_type="none"),
                                               buffer_size=buffer_bytes), path)

    @operation("open")
    def open_ranged(self, path: str):
        """A context manager giving what pyarrow opens for ranged reads (Parquet footers, row
        groups): the path itself locally, else a file fetching exactly the ranges asked for."""
        if self.local:
            return contextlib.nullcontext(path)
        return self._reading(self.fs.open(path, "rb", cache_type="none"), path)

    @operation("open")
    def open_random(self, path: str):
        """A pyarrow random-access source, as a context manager: a memory map locally,
        ranged reads in a store."""
        import pyarrow as pa

        if self.local:
            return pa.memory_map(path, "r")
        return _random_source(self._reading(self.fs.open(path, "rb", cache_type="none"), path))

    def _reading(self, file, path: str):
        """`file` (in a store), guarded: its failing reads are StorageErrors naming `path`,
        and each read asks the test hook first (kind "read")."""
        return guarded(file, self.where(path),
                       lambda method: hooks.before_storage("read", method, path))

    @operation("read")
    def get(self, path: str, local: Path, size: int | None = None) -> None:
        """Copy a file out to local disk, to a temp name renamed into place (a reader never
        sees a part); `size`: what the copy must hold (else OSError, nothing left)."""
        local.parent.mkdir(parents=True, exist_ok=True)
        part = local.with_name(f".{local.name}.{uuid.uuid4().hex[:12]}.part")
        try:
            self.fs.get_file(path, str(part))
            got = part.stat().st_size
            if size is not None and got != size:
                raise OSError(f"fetched {got} bytes, expected {size}")
            os.replace(part, local)
        finally:
            part.unlink(missing_ok=True)

    # ---- writing ----------------------------------------------------------------------------

    @operation("write")
    def write(self, path: str, data) -> None:
        """A whole file; `data`: bytes or any buffer (a pyarrow Buffer is written without a
        copy locally)."""
        if self.local:
            with _into_place(Path(path)) as tmp:
                tmp.write_bytes(data)
        else:
            self.fs.pipe_file(path, bytes(data))

    @operation("write")
    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Write `path` only if it does not exist yet (atomically); False if it did."""
        if self.local:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            return True
        try:
            self.fs.pipe_file(path, data, mode="create")
        except (FileExistsError, OSError) as exc:
            if ("PreconditionFailed" in repr(exc) or isinstance(exc, FileExistsError)
                    or "412" in str(exc)):
                return False
            raise
        except (TypeError, NotImplementedError):
            # a backend without conditional writes: check, then write (a small race remains)
            if self.is_file(path):
                return False
            self.fs.pipe_file(path, data)
        return True

    @operation("write", where_arg=1)
    def put(self, local: Path, path: str) -> None:
        """Copy a local file in, complete or not at all."""
        if self.local:
            with _into_place(Path(path)) as tmp:
                shutil.copyfile(local, tmp)
        else:
            self.fs.put_file(str(local), path)

    @operation("write")
    def makedirs(self, path: str) -> None:
        if self.local:
            Path(path).mkdir(parents=True, exist_ok=True)
        else:
            self.fs.makedirs(path, exist_ok=True)

    @operation("move", where_arg=1)
    def move(self, path: str, target: str) -> None:
        """Rename on this filesystem (a store's listing of the target's folder is refreshed)."""
        if self.local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
        else:
            self.fs.mv(path, target)
            self.fs.invalidate_cache(target.rsplit("/", 1)[0])

    @operation("remove")
    def remove(self, path: str) -> None:
        """Remove a file; one that is not there is no error."""
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            pass

    @operation("remove")
    def remove_tree(self, path: str) -> None:
        try:
            self.fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass


@contextlib.contextmanager
def _into_place(target: Path):
    """A temp path beside `target`, renamed to it when the block ends without an error."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _random_source(file):
    """pyarrow's view of a guarded file: its failure, when it failed, is what leaves."""
    import pyarrow as pa

    with reraising(file), pa.PythonFile(file, mode="r") as source:
        yield source
