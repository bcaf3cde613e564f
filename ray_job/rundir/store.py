"""A directory on any filesystem fsspec knows: a local path, or a URL (s3://, gs://, file://...).

Run directories, shard folders and rejects folders are Stores, so the same code writes them on
one machine and, from worker nodes, to shared object storage. A Store is plain data (its URL)
and can be sent to Ray tasks; the filesystem object is made where it is used. Writes are whole
files that appear complete or not at all: a local file is written to a temp name and renamed;
an object store's PUT is already all-or-nothing.
"""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..read.remote_files import filesystem, is_url


@dataclass(frozen=True)
class Store:
    url: str

    @classmethod
    def at(cls, location: str | Path) -> "Store":
        """A local path becomes absolute; a URL is kept as given (without a trailing /)."""
        text = str(location)
        return cls(text.rstrip("/") if is_url(text) else str(Path(text).expanduser().resolve()))

    @cached_property
    def _fs_root(self):
        fs, root = filesystem(self.url)
        return fs, root.rstrip("/")

    @property
    def fs(self):
        return self._fs_root[0]

    @property
    def root(self) -> str:
        return self._fs_root[1]

    @property
    def is_local(self) -> bool:
        from fsspec.implementations.local import LocalFileSystem

        return isinstance(self.fs, LocalFileSystem)

    @property
    def local_path(self) -> Path:
        if not self.is_local:
            raise ValueError(f"{self.url} is not on the local filesystem")
        return Path(self.root)

    def sub(self, name: str) -> "Store":
        return Store(f"{self.url}/{name}")

    def path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names of the files directly in this directory that match `pattern`."""
        return sorted(self.sizes(pattern))

    def sizes(self, pattern: str = "*") -> dict[str, int]:
        """Name -> size of the files directly in this directory that match `pattern`."""
        self.fs.invalidate_cache(self.root)
        try:
            found = self.fs.glob(self.path(pattern), detail=True)
        except FileNotFoundError:
            return {}
        return {p.rsplit("/", 1)[-1]: int(info["size"]) for p, info in found.items()
                if info["type"] == "file"}

    def files_below(self) -> list[str]:
        """Sorted paths (relative to this directory) of every file anywhere below it."""
        self.fs.invalidate_cache(self.root)
        try:
            found = self.fs.find(self.root, detail=True)
        except FileNotFoundError:
            return []
        start = len(self.root) + 1
        return sorted(p[start:] for p, info in found.items() if info["type"] == "file")

    def exists(self, name: str) -> bool:
        self.fs.invalidate_cache(self.root)
        return self.fs.isfile(self.path(name))

    def read_bytes(self, name: str) -> bytes:
        return self.fs.cat_file(self.path(name))

    def read_many(self, names: list[str], batch: int = 256):
        """(name, bytes) of each file in turn, fetched `batch` at a time (concurrently on an
        object store: one round of requests per batch instead of one per file)."""
        for i in range(0, len(names), batch):
            part = names[i:i + batch]
            if self.is_local or len(part) == 1:
                yield from ((n, self.read_bytes(n)) for n in part)
                continue
            found = self.fs.cat([self.path(n) for n in part])
            by_name = {p.rsplit("/", 1)[-1]: data for p, data in found.items()}
            yield from ((n, by_name[n]) for n in part)

    def read_text(self, name: str) -> str:
        return self.read_bytes(name).decode()

    def write_bytes(self, name: str, data) -> None:
        """`data`: bytes or any buffer (a pyarrow Buffer is written without a copy locally)."""
        if self.is_local:
            target = self.local_path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        else:
            self.fs.pipe_file(self.path(name), bytes(data))

    def create_exclusive(self, name: str, data: bytes) -> bool:
        """Write `name` only if it does not exist yet (atomically); False if it did."""
        if self.is_local:
            target = self.local_path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            return True
        try:
            self.fs.pipe_file(self.path(name), data, mode="create")
        except (FileExistsError, OSError) as exc:
            if "PreconditionFailed" in repr(exc) or isinstance(exc, FileExistsError) or "412" in str(exc):
                return False
            raise
        except (TypeError, NotImplementedError):
            # a backend without conditional writes: check, then write (a small race remains)
            if self.exists(name):
                return False
            self.fs.pipe_file(self.path(name), data)
        return True

    def write_text(self, name: str, text: str) -> None:
        self.write_bytes(name, text.encode())

    def put(self, local: Path, name: str) -> None:
        """Copy a local file in, complete or not at all."""
        if self.is_local:
            _copy_local(Path(local), self.local_path / name)
        else:
            self.fs.put_file(str(local), self.path(name))

    def get(self, name: str, local: Path) -> None:
        """Copy a file out to local disk (temp name, then rename)."""
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.tmp")
        self.fs.get_file(self.path(name), str(tmp))
        os.replace(tmp, local)

    def open_random(self, name: str):
        """A random-access source for the file (a memory map locally; ranged reads remotely),
        to be used as a context manager."""
        import pyarrow as pa

        if self.is_local:
            return pa.memory_map(str(self.local_path / name), "r")
        return pa.PythonFile(self.fs.open(self.path(name), "rb", cache_type="none"), mode="r")

    def remove_matching(self, pattern: str) -> None:
        """Remove the files directly in this directory whose names match `pattern`."""
        for name in self.names(pattern):
            self.remove(name)

    def remove(self, name: str) -> None:
        try:
            self.fs.rm_file(self.path(name))
        except FileNotFoundError:
            pass

    def move(self, name: str, target: str) -> None:
        """Rename within this store (`target` relative to it, e.g. "corrupt/part-x.arrow")."""
        if self.is_local:
            dest = self.local_path / target
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.local_path / name, dest)
        else:
            self.fs.mv(self.path(name), self.path(target))

    def remove_tree(self) -> None:
        try:
            self.fs.rm(self.root, recursive=True)
        except FileNotFoundError:
            pass

    def makedirs(self) -> None:
        if self.is_local:
            self.local_path.mkdir(parents=True, exist_ok=True)


def _copy_local(source: Path, target: Path) -> None:
    import shutil

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)
