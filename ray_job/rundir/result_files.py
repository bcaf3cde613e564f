"""The run's results (`RunDir.results`): the files the driver makes in the run directory
(embeddings.h5, exports, the index, the map, the card, report.json), each put in place whole,
and a local readable copy of each where h5py or a reader needs one."""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import LeaseLost, UserError
from ..redact import redact_url
from ..storage.store import Store
from . import layout
from .fence import Fence


@dataclass(frozen=True)
class ResultFiles:
    """The results under `store` (the run directory's own, fenced by `fence` or not);
    `cache()`: this user's private cache folder of the run (RunDir.cache_dir), made only when
    a result needs it."""
    store: Store
    fence: Fence | None
    cache: Callable[[], Path]

    @property
    def _is_remote(self) -> bool:
        return not self.store.is_local

    def _check_fence(self) -> None:
        if self.fence:
            self.fence.check()

    def has(self, name: str) -> bool:
        return self.store.exists(name)

    def local(self, name: str) -> Path:
        """A local readable copy of a result file: the file itself for a local run; for a
        remote one a copy in this user's private cache, fetched again when the stored file
        changed (size or version)."""
        if not self.has(name):
            raise UserError(f"{self.store.url} has no {name} yet (run or finalize it first)")
        if not self._is_remote:
            return self.store.local_path / name
        from ..storage.remote_files import local_copy

        return Path(local_copy(f"{self.store.url}/{name}", str(self.cache())))

    @contextlib.contextmanager
    def writer(self, name: str) -> Iterator[Path]:
        """Yields a fresh local path to write `name` to; when the block ends without an error
        the file is put in place whole (nothing half-written is ever visible)."""
        folder = (self.store.local_path / name).parent if not self._is_remote else self.cache()
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{Path(name).name}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            yield tmp
            if self._is_remote:
                self.store.put(tmp, name)          # fenced like every write of the store
            else:                       # a rename through the door, like every other write
                self._check_fence()
                self.store.files.move(str(tmp), self.store.path(name))
            self._still_held_after(name)
        finally:
            tmp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def folder_writer(self, name: str) -> Iterator[Path]:
        """Yields a fresh local path (not yet there) to build the folder `name` in; when the
        block ends without an error the old folder is removed and the new one put in its
        place (locally a rename; in an object store its files one by one, a Lance table's
        version manifests last, so no reader takes a half-copied folder for a table)."""
        base = (self.store.local_path / name).parent if not self._is_remote else self.cache()
        work = base / f".{Path(name).name}.{uuid.uuid4().hex[:12]}.tmp"
        work.mkdir(parents=True)
        try:
            yield work / Path(name).name
            built = work / Path(name).name
            target = self.store.sub(name)
            target.remove_tree()                   # fenced, as each put below
            if not self._is_remote:
                self._check_fence()
                os.replace(built, target.local_path)
            else:
                files = [p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file()]
                for rel in sorted(files, key=lambda n: _publish_order(f"{name}/{n}")):
                    target.put(built / rel, rel)
            self._still_held_after(name)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def put(self, local: Path, name: str) -> None:
        """Store a copy of a local file under `name`, complete or not at all."""
        self.store.put(Path(local), name)
        self._still_held_after(name)

    def _still_held_after(self, name: str) -> None:
        """A result committed in the instant the lease changed hands (between the check and
        the rename, fence.py) may have replaced the new holder's: say so in the one line."""
        try:
            self._check_fence()
        except LeaseLost as lost:
            raise LeaseLost(f"{lost}; its {name} was written as the lease changed hands and may "
                            f"have replaced that driver's: run `ray-embed finalize "
                            f"{redact_url(self.store.url)}` once it has finished") from None

    def read_text(self, name: str) -> str:
        return self.store.read_text(name)

    def remove(self, name: str) -> None:
        self.store.remove(name)

    def names(self, folder: str) -> list[str]:
        """The result files in a folder of results (e.g. parquet/), as names in the run."""
        pattern = layout.RESULT_FOLDERS[folder]
        store = self.store.sub(folder)
        found = ([n for n in store.files_below() if layout.in_owned_tree(folder, n)]
                 if pattern == layout.TREE else layout.declared(self.store, folder, pattern))
        names = sorted(found, key=lambda n: _publish_order(f"{folder}/{n}"))
        return [f"{folder}/{n}" for n in names]

    def publishable(self) -> dict[str, Path]:
        """name -> local file of everything `ray-embed upload` sends (report.json last)."""
        names = [n for n in layout.RESULT_FILES if n != layout.REPORT and self.has(n)]
        for folder in layout.RESULT_FOLDERS:
            names += self.names(folder)
        names += [layout.REPORT] if self.has(layout.REPORT) else []
        return {name: self.local(name) for name in names}


def _publish_order(name: str) -> tuple[bool, bool, str]:
    """A folder's record (index.json, map.json) and a Lance table's version manifests go
    after the files they name, so a reader of a half-published copy never trusts it."""
    return name in layout.LAST_IN_FOLDER, "/_versions/" in name, name
