"""A directory of whole files on any filesystem: a local path, or a URL (s3://, gs://, file://...).

Run directories, shard folders and rejects folders are Stores, so the same code writes them on
one machine and, from worker nodes, to shared object storage. A Store is plain data (its URL)
and can be sent to Ray tasks; its `Files` (the one door, files.py) is made where it is used.
Writes are whole files that appear complete or not at all.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .files import Files, files_for, is_url


@dataclass(frozen=True)
class Store:
    url: str

    @classmethod
    def at(cls, location: str | Path) -> Store:
        """A local path becomes absolute; a URL is kept as given (without a trailing /)."""
        text = str(location)
        return cls(text.rstrip("/") if is_url(text) else str(Path(text).expanduser().resolve()))

    @cached_property
    def _door(self) -> tuple[Files, str]:
        files, root = files_for(self.url)
        return files, root.rstrip("/")

    @property
    def files(self) -> Files:
        return self._door[0]

    @property
    def root(self) -> str:
        return self._door[1]

    @property
    def is_local(self) -> bool:
        return self.files.local

    @property
    def local_path(self) -> Path:
        if not self.is_local:
            raise ValueError(f"{self.url} is not on the local filesystem")
        return Path(self.root)

    def sub(self, name: str) -> Store:
        return Store(f"{self.url}/{name}")

    def path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names of the files directly in this directory that match `pattern`."""
        return sorted(self.sizes(pattern))

    def is_file(self) -> bool:
        """Whether this location is a file (an object), not a folder (a prefix)."""
        return self.files.is_file(self.root)

    def entries(self) -> list[tuple[str, bool]]:
        """(name, is a folder) of what is directly here, now; none when nothing is here."""
        try:
            found = self.files.listing(self.root, directory=True)
        except FileNotFoundError:
            return []
        return [(info["name"].rstrip("/").rsplit("/", 1)[-1], info["type"] == "directory")
                for info in found if info["name"].rstrip("/") != self.root]

    def sizes(self, pattern: str = "*") -> dict[str, int]:
        """Name -> size of the files directly in this directory that match `pattern`."""
        sizes = self.files.sizes(self.path(pattern))
        return {p.rsplit("/", 1)[-1]: size for p, size in sizes.items()}

    def files_below(self) -> list[str]:
        """Sorted paths (relative to this directory) of every file anywhere below it."""
        try:
            found = self.files.listing(self.root, directory=True, recursive=True)
        except FileNotFoundError:
            return []
        start = len(self.root) + 1
        return sorted(info["name"][start:] for info in found if info["type"] == "file")

    def exists(self, name: str) -> bool:
        return self.files.is_file(self.path(name))

    def read_bytes(self, name: str) -> bytes:
        return self.files.read(self.path(name))

    def read_many(self, names: list[str], batch: int = 256):
        """(name, bytes) of each file in turn, fetched `batch` at a time (concurrently on an
        object store: one round of requests per batch instead of one per file)."""
        for i in range(0, len(names), batch):
            part = names[i:i + batch]
            found = self.files.read_many([self.path(n) for n in part])
            by_name = {p.rsplit("/", 1)[-1]: data for p, data in found.items()}
            yield from ((n, by_name[n]) for n in part)

    def read_text(self, name: str) -> str:
        return self.read_bytes(name).decode()

    def write_bytes(self, name: str, data) -> None:
        """`data`: bytes or any buffer (a pyarrow Buffer is written without a copy locally)."""
        self.files.write(self.path(name), data)

    def create_exclusive(self, name: str, data: bytes) -> bool:
        """Write `name` only if it does not exist yet (atomically); False if it did."""
        return self.files.create_exclusive(self.path(name), data)

    def write_text(self, name: str, text: str) -> None:
        self.write_bytes(name, text.encode())

    def put(self, local: Path, name: str) -> None:
        """Copy a local file in, complete or not at all."""
        self.files.put(Path(local), self.path(name))

    def get(self, name: str, local: Path) -> None:
        """Copy a file out to local disk (temp name, then rename)."""
        self.files.get(self.path(name), local)

    def open_random(self, name: str):
        """A random-access source for the file (a memory map locally; ranged reads remotely),
        to be used as a context manager."""
        return self.files.open_random(self.path(name))

    def remove_matching(self, pattern: str) -> None:
        """Remove the files directly in this directory whose names match `pattern`."""
        for name in self.names(pattern):
            self.remove(name)

    def remove(self, name: str) -> None:
        self.files.remove(self.path(name))

    def move(self, name: str, target: str) -> None:
        """Rename within this store (`target` relative to it, e.g. "corrupt/part-x.arrow")."""
        self.files.move(self.path(name), self.path(target))

    def remove_tree(self) -> None:
        self.files.remove_tree(self.root)
