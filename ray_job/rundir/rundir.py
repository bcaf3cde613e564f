"""RunDir: the one door to a run directory (job.json, report.json, plan.json, the lease), on
local disk or in object storage (s3://, gs://, ...); each other part of it is an object it hands
out, in a module of its own: `shards` (shard_files.py), `rejects` (reject_files.py), `reads`
(reads/ and reuse/: read_records.py) and `results` (embeddings.h5, exports: result_files.py).

It is plain data (its URL, and the fence of the lease its driver holds), so Ray workers build
their own from those and write shards, rejects and read records through it; the driver reads
shards from where they are (memory mapped locally, ranged reads from an object store) and gets
a local file only where h5py needs one (`results.local`, a private cache). Names and patterns
come from `layout`. A RunDir made by `held()` is fenced: each of its commits, through any of its
pieces, first checks that the lease is still its driver's (fence.py); one made by `at()` reads,
and writes unfenced.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..errors import UserError
from ..storage.store import Store
from . import layout
from .cleanup import clear_run
from .fence import Fence, FencedStore
from .job import JobRecord
from .lease import Lease
from .read_records import ReadRecords
from .reject_files import RejectFiles
from .result_files import ResultFiles
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

    # ---- the frozen read plan ---------------------------------------------------------------

    def load_plan(self) -> dict | None:
        if not self.store.exists(layout.PLAN):
            return None
        return json.loads(self.store.read_text(layout.PLAN))

    def write_plan(self, plan: dict) -> None:
        self.store.write_text(layout.PLAN, json.dumps(plan, separators=(",", ":")))

    # ---- the pieces of the run directory, each an object of its own ----------------------------

    @cached_property
    def shards(self) -> ShardFiles:
        """shards/: the encoded blocks (written by the shard sink, read by finalize)."""
        return ShardFiles(self.store)

    @cached_property
    def rejects(self) -> RejectFiles:
        """rejects/: the rows that are not embedded, with their reasons."""
        return RejectFiles(self.store, self.scratch)

    @cached_property
    def reads(self) -> ReadRecords:
        """reads/ and reuse/: what the read stage counted per unit, and the rows an
        incremental run reuses."""
        return ReadRecords(self.store)

    @cached_property
    def results(self) -> ResultFiles:
        """The files the driver makes (embeddings.h5, exports, index, map, card, report)."""
        return ResultFiles(self.store, self.fence, self.local_cache)

    # ---- local folders of this user ----------------------------------------------------------


    @contextlib.contextmanager
    def scratch(self) -> Iterator[Path]:
        """A fresh local folder in this user's private cache for temporary files (the
        finalizer's sorted runs and buckets); removed when the block ends."""
        folder = Path(tempfile.mkdtemp(prefix="scratch-", dir=self.cache_dir))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def local_cache(self) -> Path:
        """`cache_dir`, made when first asked for (a bound method, so a RunDir stays picklable)."""
        return self.cache_dir

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


def _json_text(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
