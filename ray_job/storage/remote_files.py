"""Input files behind URLs (s3://, gs://, https://, hf://, file://, ...), and local ones.

The driver lists and sizes them here; read tasks open them where they are (buffered byte
streams, random access for Parquet), never downloading a whole file, except DuckDB files,
which the duckdb module can only open locally: `local_copy` fetches those once per node into a
cache directory. Local paths get plain `open()`. Every operation goes through the door
(`files.files_for`).
"""
from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import UserError
from ..redact import redact_text
from .failures import StorageError, first_line
from .files import STREAM_BUFFER_BYTES, files_for, is_url, stored_version, url_path


@dataclass(frozen=True)
class RemoteFile:
    url: str
    size: int


def _says(message: str) -> str:
    """A message for the user: a URL's credentials (and any echoed by a backend) masked."""
    return redact_text(message)


@contextlib.contextmanager
def user_errors(url: str) -> Iterator[None]:
    """Storage errors on a URL the user gave, as one-line UserErrors naming it. Backends
    raise their own types for an unreachable endpoint or missing credentials (botocore's,
    aiohttp's...): any error here is about the URL, its store or the credentials."""
    try:
        yield
    except UserError:
        raise
    except FileNotFoundError:
        raise UserError(_says(f"input not found: {url}")) from None
    except PermissionError as exc:
        raise UserError(_says(f"access denied to {url}: {first_line(exc)}")) from None
    except StorageError as exc:
        raise UserError(_says(f"cannot read {url}: {exc.strerror}")) from None
    except Exception as exc:  # noqa: BLE001 - each fsspec backend raises its own kinds
        raise UserError(_says(f"cannot read {url}: {first_line(exc)}")) from None


# ---- listing (driver) -------------------------------------------------------------------

def list_url(url: str, wanted: Callable[[str], bool], recursive: bool = False) -> list[RemoteFile]:
    """The file a URL names; or the `wanted` files directly in the directory it names (at any
    depth when `recursive`), or matching its glob pattern, sorted by URL. Nothing there at
    all: UserError."""
    files, path = files_for(url)
    with user_errors(url):
        info = _info_or_none(files, path)
        if info is not None and info["type"] != "directory":
            return [_remote_file(files, info, url)]
        if info is None and not is_glob(path):
            raise FileNotFoundError(path)
        entries = files.listing(path, directory=info is not None, recursive=recursive)
        if info is None and not entries:             # a pattern that matches nothing
            raise FileNotFoundError(path)
    found = [_remote_file(files, e) for e in entries if e["type"] == "file"]
    return sorted((f for f in found if wanted(f.url)), key=lambda f: f.url)


def _info_or_none(files, path: str) -> dict | None:
    try:
        return files.info(path)
    except FileNotFoundError:
        return None


def is_glob(path: str) -> bool:
    return any(ch in path for ch in "*[")


def _remote_file(files, info: dict, url: str | None = None) -> RemoteFile:
    url = url or files.url(info["name"])
    if info.get("size") is None:
        raise UserError(_says(f"cannot read {url}: its size is unknown (the server sends no "
                              f"Content-Length)"))
    return RemoteFile(url, int(info["size"]))


def version_of(path: str) -> str:
    """What changes when the file at `path` is replaced (mtime locally, the store's version)."""
    files, inner = files_for(path)
    with user_errors(path):
        return files.version(inner)


def identity_of(path: str) -> tuple[int, str] | None:
    """(size, version) of the file at `path` now, None when it is gone (read tasks compare it
    with the manifest: read/manifest.py)."""
    files, inner = files_for(path)
    with user_errors(path):
        try:
            return files.identity(inner)
        except FileNotFoundError:
            return None


# ---- opening (read tasks and driver) ----------------------------------------------------

def open_stream(path: str, buffer_bytes: int = STREAM_BUFFER_BYTES):
    """A binary file for sequential reading (seek, read, readline): plain open() for a local
    path; for a URL, one ranged request per `buffer_bytes` read, no whole-file download."""
    files, inner = files_for(path)
    return files.open_stream(inner, buffer_bytes)


def random_access_source(path: str):
    """A context manager giving what pyarrow opens: the path itself when local, else a file
    object that fetches exactly the byte ranges asked for (Parquet footers, row groups)."""
    files, inner = files_for(path)
    return files.open_ranged(inner)


# ---- local copies (DuckDB) --------------------------------------------------------------

def default_cache_dir() -> str:
    from .scratch import private_dir

    return str(private_dir("inputs"))


def local_copy(path: str, cache_dir: str | None = None) -> str:
    """A local file with the contents of `path`: the path itself when local, else a copy
    fetched once into `cache_dir` (default: under this node's temp dir) and reused after."""
    if not is_url(path):
        return path
    files, inner = files_for(path)
    if files.local:
        return inner
    with user_errors(path):
        info = files.info(inner)
        target = Path(cache_dir or default_cache_dir()) / cache_name(path, info)
        if not target.exists():
            _fetch_once(files, inner, target, info.get("size"))
    return str(target)


def cache_name(url: str, info: dict) -> str:
    """A name that changes with the URL and the stored file's size and version."""
    identity = f"{url}\n{info.get('size')}\n{stored_version(info)}"
    digest = hashlib.sha256(identity.encode()).hexdigest()
    return f"{digest[:24]}-{PurePosixPath(url_path(url)).name}"


def _fetch_once(files, inner: str, target: Path, size: int | None) -> None:
    """Download under a lock, so concurrent tasks on one node fetch the file once."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(target.with_name(target.name + ".lock")):
        if not target.exists():             # fetched to a temp name: never seen partial
            files.get(inner, target, size)



@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
