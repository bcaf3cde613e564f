"""Input files behind fsspec URLs (s3://, gs://, https://, hf://, file://, ...).

The driver lists and sizes them here; read tasks open them where they are (buffered byte
streams, random access for Parquet), never downloading a whole file, except DuckDB files,
which the duckdb module can only open locally: `local_copy` fetches those once per node into a
cache directory. Local paths get plain `open()`, as fast as before.

Which backend serves a URL is fsspec's own protocol dispatch; credentials and endpoints come
from each backend's usual places (AWS_* variables and ~/.aws for s3://, HF_TOKEN and
HF_ENDPOINT for hf://, FSSPEC_<PROTOCOL>_<OPTION> variables for any storage option).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator
from urllib.parse import urlsplit

from ..errors import UserError
from ..redact import redact_text

STREAM_BUFFER_BYTES = 8 * 1024 * 1024      # one ranged request per this many bytes read
# info() fields that change when a stored file is replaced, the first one present is used
VERSION_FIELDS = ("ETag", "etag", "blob_id", "md5Hash", "generation", "mtime",
                  "LastModified", "Last-Modified", "updated")


@dataclass(frozen=True)
class RemoteFile:
    url: str
    size: int


def is_url(path: str) -> bool:
    """True for anything with a protocol (s3://, file://, simplecache::s3://...)."""
    from fsspec.core import split_protocol

    return split_protocol(str(path))[0] is not None


def url_path(url: str) -> str:
    """The path part of a URL (no query string): what its file type is told from."""
    return urlsplit(url).path


def filesystem(url: str):
    """fsspec's filesystem for a URL and the path inside it; a missing backend is a UserError."""
    from fsspec.core import url_to_fs

    try:
        return url_to_fs(url)
    except (ImportError, ValueError) as exc:  # backend package not installed / unknown protocol
        raise UserError(_says(f"cannot read {url}: {_first_line(exc)}")) from None


def _says(message: str) -> str:
    """A message for the user: a URL's credentials (and any echoed by a backend) masked."""
    return redact_text(message)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


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
        raise UserError(_says(f"access denied to {url}: {_first_line(exc)}")) from None
    except Exception as exc:
        raise UserError(_says(f"cannot read {url}: {_first_line(exc)}")) from None


# ---- listing (driver) -------------------------------------------------------------------

def list_url(url: str, wanted: Callable[[str], bool], recursive: bool = False) -> list[RemoteFile]:
    """The file a URL names; or the `wanted` files directly in the directory it names (at any
    depth when `recursive`), or matching its glob pattern, sorted by URL. Nothing there at
    all: UserError."""
    fs, path = filesystem(url)
    with user_errors(url):
        info = _info_or_none(fs, path)
        if info is not None and info["type"] != "directory":
            return [_remote_file(fs, info, url)]
        if recursive and info is not None:
            entries = list(fs.find(path, detail=True).values())
        else:
            entries = _listing(fs, path, info)
    files = [_remote_file(fs, e) for e in entries if e["type"] == "file"]
    return sorted((f for f in files if wanted(f.url)), key=lambda f: f.url)


def _info_or_none(fs, path: str) -> dict | None:
    try:
        return fs.info(path)
    except FileNotFoundError:
        return None


def _listing(fs, path: str, directory: dict | None) -> list[dict]:
    """The entries of a directory, or (no directory) the matches of a glob pattern."""
    if directory is not None:
        return fs.ls(path, detail=True)
    matches = fs.glob(path, detail=True) if is_glob(path) else {}
    if not matches:
        raise FileNotFoundError(path)
    return list(matches.values())


def is_glob(path: str) -> bool:
    return any(ch in path for ch in "*[")


def _remote_file(fs, info: dict, url: str | None = None) -> RemoteFile:
    url = url or fs.unstrip_protocol(info["name"])
    if info.get("size") is None:
        raise UserError(_says(f"cannot read {url}: its size is unknown (the server sends no "
                              f"Content-Length)"))
    return RemoteFile(url, int(info["size"]))


# ---- opening (read tasks and driver) ----------------------------------------------------

def open_stream(path: str, buffer_bytes: int = STREAM_BUFFER_BYTES):
    """A binary file for sequential reading (seek, read, readline): plain open() for a local
    path; for a URL, one ranged request per `buffer_bytes` read, no whole-file download."""
    if not is_url(path):
        return open(path, "rb")
    fs, inner = filesystem(path)
    return io.BufferedReader(fs.open(inner, "rb", cache_type="none"), buffer_size=buffer_bytes)


def random_access_source(path: str):
    """A context manager giving what pyarrow opens: the path itself when local, else a file
    object that fetches exactly the byte ranges asked for (Parquet footers, row groups)."""
    if not is_url(path):
        return contextlib.nullcontext(path)
    fs, inner = filesystem(path)
    return fs.open(inner, "rb", cache_type="none")


# ---- local copies (DuckDB) --------------------------------------------------------------

def default_cache_dir() -> str:
    from .scratch import private_dir

    return str(private_dir("inputs"))


def local_copy(path: str, cache_dir: str | None = None) -> str:
    """A local file with the contents of `path`: the path itself when local, else a copy
    fetched once into `cache_dir` (default: under this node's temp dir) and reused after."""
    if not is_url(path):
        return path
    fs, inner = filesystem(path)
    if _is_local(fs):
        return inner
    with user_errors(path):
        info = fs.info(inner)
        target = Path(cache_dir or default_cache_dir()) / cache_name(path, info)
        if not target.exists():
            _fetch_once(fs, inner, target, info.get("size"))
    return str(target)


def _is_local(fs) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def cache_name(url: str, info: dict) -> str:
    """A name that changes with the URL and the stored file's size and version."""
    version = next((str(info[k]) for k in VERSION_FIELDS if info.get(k)), "")
    digest = hashlib.sha256(f"{url}\n{info.get('size')}\n{version}".encode()).hexdigest()
    return f"{digest[:24]}-{PurePosixPath(url_path(url)).name}"


def _fetch_once(fs, inner: str, target: Path, size: int | None) -> None:
    """Download under a lock, so concurrent tasks on one node fetch the file once."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(target.with_name(target.name + ".lock")):
        if not target.exists():
            _download(fs, inner, target, size)


def _download(fs, inner: str, target: Path, size: int | None) -> None:
    """Fetch to a unique temp name, then rename: readers never see a partial file."""
    part = target.with_name(f"{target.name}.{uuid.uuid4().hex}.part")
    try:
        fs.get_file(inner, str(part))
        got = part.stat().st_size
        if size is not None and got != size:
            raise OSError(f"fetched {got} bytes, expected {size}")
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
