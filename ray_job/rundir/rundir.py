"""RunDir: the one door to a run directory (job.json, shards/, rejects/, reuse/, results), on
local disk or in object storage (s3://, gs://, ...).

It is plain data (its URL, and the fence of the lease its driver holds), so Ray workers build
their own from those and write shards, rejects and reuse lists through it; the driver reads
shards from where they are (memory mapped locally, ranged reads from an object store) and gets
a local file only where h5py needs one (`local_result`, a private cache). Names and patterns
come from `layout`. A RunDir made by `held()` is fenced: each of its commits first checks that
the lease is still its driver's (fence.py); one made by `at()` reads, and writes unfenced.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pyarrow as pa

from ..errors import LeaseLost, UserError
from ..redact import redact_url
from ..storage.store import Store
from . import layout
from .cleanup import clear_run
from .fence import Fence, FencedStore
from .job import JobRecord
from .lease import Lease
from .reject_files import RejectFiles
from .reuse import COUNT_NAMES, decode_reuse, encode_reuse
from .shard_files import ShardFiles


@dataclass(frozen=True)
class RunDir:
    url: str
    fence: Fence | None = None        # set while a driver holds the lease (`held`)

    @classmethod
    def at(cls, location: str | Path) -> RunDir:
        return cls(Store.at(location).url)

    @cached_property
    def store(self) -> Store:
        return FencedStore(self.url, self.fence) if self.fence else Store(self.url)

    @property
    def is_remote(self) -> bool:
        return not self.store.is_local

    def __str__(self) -> str:
        return self.url

    def child_url(self, name: str) -> str:
        return f"{self.url}/{name}"

    # ---- job.json and report.json ---------------------------------------------------------

    def has_job(self) -> bool:
        return self.store.exists(layout.JOB)

    def load_job(self) -> JobRecord:
        if not self.has_job():
            raise UserError(f"{self.url} is not a run directory (no {layout.JOB})")
        return JobRecord.from_json(self.store.read_text(layout.JOB), self.url)

    def write_job(self, record: JobRecord) -> None:
        self.store.write_text(layout.JOB, record.to_json())

    def load_report(self) -> dict:
        if not self.store.exists(layout.REPORT):
            return {}
        return json.loads(self.store.read_text(layout.REPORT))

    def write_report(self, report: dict) -> None:
        self.store.write_text(layout.REPORT, _json_text(report))

    def write_log(self, name: str, text: str) -> str:
        """A failure log (layout.driver_log) in the run directory; returns its URL."""
        self.store.write_text(name, text)
        return self.child_url(name)

    # ---- the frozen read plan and what the read stage saw -------------------------------------

    def load_plan(self) -> dict | None:
        if not self.store.exists(layout.PLAN):
            return None
        return json.loads(self.store.read_text(layout.PLAN))

    def write_plan(self, plan: dict) -> None:
        self.store.write_text(layout.PLAN, json.dumps(plan, separators=(",", ":")))

    def write_unit_reads(self, unit_name: str, counts: dict) -> None:
        self.store.sub(layout.READS).write_text(layout.unit_reads(unit_name), json.dumps(counts))

    def unit_reads(self) -> dict[str, dict]:
        """unit name -> what the read stage counted in it (rows seen, ...)."""
        reads = self.store.sub(layout.READS)
        return {layout.unit_of(name): json.loads(data)
                for name, data in reads.read_many(self._declared(layout.READS, layout.READS_GLOB))}

    def _declared(self, folder: str, pattern: str) -> list[str]:
        return layout.declared(self.store, folder, pattern)

    # ---- shards and rejects ------------------------------------------------------------------

    @cached_property
    def shards(self) -> ShardFiles:
        """shards/: the encoded blocks (written by the shard sink, read by finalize)."""
        return ShardFiles(self.store)

    @cached_property
    def rejects(self) -> RejectFiles:
        """rejects/: the rows that are not embedded, with their reasons."""
        return RejectFiles(self.store, self.scratch)

    # ---- reuse lists (incremental runs) -------------------------------------------------------

    @property
    def _reuse(self) -> Store:
        return self.store.sub(layout.REUSE)

    def write_reuse(self, unit_name: str, table: pa.Table, counts: dict) -> None:
        """The reused rows of one unit, then its reused/new/changed counts (each file whole)."""
        self._reuse.write_bytes(layout.unit_reuse_rows(unit_name), encode_reuse(table))
        self._reuse.write_text(layout.unit_reuse_counts(unit_name), json.dumps(counts))

    def reuse_names(self) -> list[str]:
        return self._declared(layout.REUSE, layout.REUSE_ROWS_GLOB)

    def read_reuse(self, name: str) -> pa.Table:
        with self._reuse.open_random(name) as source:
            return decode_reuse(source)

    def reuse_counts(self) -> dict[str, int]:
        totals = dict.fromkeys(COUNT_NAMES, 0)
        for name in self._declared(layout.REUSE, layout.REUSE_COUNTS_GLOB):
            for k, v in json.loads(self._reuse.read_text(name)).items():
                totals[k] += v
        return totals

    # ---- results (files the driver makes: embeddings.h5, exports, the card) -----------------

    def has_result(self, name: str) -> bool:
        return self.store.exists(name)

    def local_result(self, name: str) -> Path:
        """A local readable copy of a result file: the file itself for a local run; for a
        remote one a copy in this user's private cache, fetched again when the stored file
        changed (size or version)."""
        if not self.has_result(name):
            raise UserError(f"{self.url} has no {name} yet (run or finalize it first)")
        if not self.is_remote:
            return self.store.local_path / name
        from ..storage.remote_files import local_copy

        return Path(local_copy(self.child_url(name), str(self.cache_dir)))

    @contextlib.contextmanager
    def result_writer(self, name: str) -> Iterator[Path]:
        """Yields a fresh local path to write `name` to; when the block ends without an error
        the file is put in place whole (nothing half-written is ever visible)."""
        folder = (self.store.local_path / name).parent if not self.is_remote else self.cache_dir
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{Path(name).name}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            yield tmp
            if self.is_remote:
                self.store.put(tmp, name)          # fenced like every write of the store
            else:                       # a rename through the door, like every other write
                self.check_fence()
                self.store.files.move(str(tmp), self.store.path(name))
            self._still_held_after(name)
        finally:
            tmp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def result_folder_writer(self, name: str) -> Iterator[Path]:
        """Yields a fresh local path (not yet there) to build the folder `name` in; when the
        block ends without an error the old folder is removed and the new one put in its
        place (locally a rename; in an object store its files one by one, a Lance table's
        version manifests last, so no reader takes a half-copied folder for a table)."""
        base = (self.store.local_path / name).parent if not self.is_remote else self.cache_dir
        work = base / f".{Path(name).name}.{uuid.uuid4().hex[:12]}.tmp"
        work.mkdir(parents=True)
        try:
            yield work / Path(name).name
            built = work / Path(name).name
            target = self.store.sub(name)
            target.remove_tree()                   # fenced, as each put below
            if not self.is_remote:
                self.check_fence()
                os.replace(built, target.local_path)
            else:
                files = [p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file()]
                for rel in sorted(files, key=lambda n: _publish_order(f"{name}/{n}")):
                    target.put(built / rel, rel)
            self._still_held_after(name)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def put_result(self, local: Path, name: str) -> None:
        """Store a copy of a local file under `name`, complete or not at all."""
        self.store.put(Path(local), name)
        self._still_held_after(name)

    def _still_held_after(self, name: str) -> None:
        """A result committed in the instant the lease changed hands (between the check and
        the rename, fence.py) may have replaced the new holder's: say so in the one line."""
        try:
            self.check_fence()
        except LeaseLost as lost:
            raise LeaseLost(f"{lost}; its {name} was written as the lease changed hands and may "
                            f"have replaced that driver's: run `ray-embed finalize "
                            f"{redact_url(self.url)}` once it has finished") from None

    def read_result_text(self, name: str) -> str:
        return self.store.read_text(name)

    def remove_result(self, name: str) -> None:
        self.store.remove(name)

    def result_names(self, folder: str) -> list[str]:
        """The result files in a folder of results (e.g. parquet/), as names in the run."""
        pattern = layout.RESULT_FOLDERS[folder]
        store = self.store.sub(folder)
        found = ([n for n in store.files_below() if layout.in_owned_tree(folder, n)]
                 if pattern == layout.TREE else self._declared(folder, pattern))
        names = sorted(found, key=lambda n: _publish_order(f"{folder}/{n}"))
        return [f"{folder}/{n}" for n in names]

    def publishable(self) -> dict[str, Path]:
        """name -> local file of everything `ray-embed upload` sends (report.json last)."""
        names = [n for n in layout.RESULT_FILES if n != layout.REPORT and self.has_result(n)]
        for folder in layout.RESULT_FOLDERS:
            names += self.result_names(folder)
        names += [layout.REPORT] if self.has_result(layout.REPORT) else []
        return {name: self.local_result(name) for name in names}

    @contextlib.contextmanager
    def scratch(self) -> Iterator[Path]:
        """A fresh local folder in this user's private cache for temporary files (the
        finalizer's sorted runs and buckets); removed when the block ends."""
        folder = Path(tempfile.mkdtemp(prefix="scratch-", dir=self.cache_dir))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @cached_property
    def cache_dir(self) -> Path:
        from ..storage.scratch import private_dir

        return private_dir("runs", hashlib.sha256(self.url.encode()).hexdigest()[:16])

    # ---- lifecycle ----------------------------------------------------------------------------

    def lease(self) -> Lease:
        """Context manager: this driver alone works on the run until the block ends."""
        return Lease(Store(self.url), layout.LEASE, self.url)

    @contextlib.contextmanager
    def held(self) -> Iterator[RunDir]:
        """Hold the run's lease while the block runs; yields this run directory fenced by it
        (every commit checks the lease is still this driver's: LeaseLost otherwise)."""
        with self.lease() as lease:
            yield dataclasses.replace(self, fence=Fence(self.url, layout.LEASE,
                                                        lease.record.owner))

    def check_fence(self) -> None:
        """LeaseLost when this run directory is fenced by a lease its driver lost."""
        if self.fence:
            self.fence.check()

    def start(self, record: JobRecord, fresh: bool) -> None:
        """Write the run's record, once, before any shard (`fresh`: the earlier run discarded
        first). Whether the run may go on from what is here was checked before."""
        if fresh:
            self.clear()
        self.write_job(record)

    def clear(self) -> None:
        """Discard the run (`--fresh`): only what ray-embed made, only in a run directory
        (and, fenced, only under the lease: its check comes before the folder's)."""
        self.check_fence()
        clear_run(self.store)


def _publish_order(name: str) -> tuple[bool, bool, str]:
    """A folder's record (index.json, map.json) and a Lance table's version manifests go
    after the files they name, so a reader of a half-published copy never trusts it."""
    return name in layout.LAST_IN_FOLDER, "/_versions/" in name, name


def _json_text(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
