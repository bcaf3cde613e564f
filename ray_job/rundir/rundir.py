"""The run directory is the state: job.json, shards/, rejects/, reuse/, report.json,
embeddings.h5 (and exports), on local disk or in object storage."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import OUTPUT_DEFINING_FIELDS, JobConfig
from ..errors import UserError
from .store import Store

SHARD_GLOB = "part-*.arrow"


@dataclass(frozen=True)
class RunDir:
    """A run directory: `store` is where it lives (a local path or a URL such as s3://b/run),
    `root` the driver's local copy of it (the same directory when the store is local; a
    staging directory when it is remote). Workers write shards/, rejects/ and reuse/ straight
    to the store; the driver mirrors them into `root` to finalize, and publishes what it made
    (embeddings.h5, report.json, exports) back to the store."""
    store: Store
    root: Path

    @classmethod
    def at(cls, location: str | Path) -> "RunDir":
        store = Store.at(location)
        if store.is_local:
            return cls(store, store.local_path)
        digest = hashlib.sha1(store.url.encode()).hexdigest()[:16]
        return cls(store, default_staging() / digest)

    @property
    def is_remote(self) -> bool:
        return not self.store.is_local

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    @property
    def rejects(self) -> Path:
        return self.root / "rejects"

    @property
    def reuse(self) -> Path:
        return self.root / "reuse"

    @property
    def job_json(self) -> Path:
        return self.root / "job.json"

    @property
    def report_json(self) -> Path:
        return self.root / "report.json"

    @property
    def h5(self) -> Path:
        return self.root / "embeddings.h5"

    def part(self, name: str) -> Store:
        """shards/, rejects/ or reuse/ in the store (what workers write to)."""
        return self.store.sub(name)

    def local_result(self, name: str) -> Path:
        """A local readable copy of a result file (e.g. "embeddings.h5", "index/ann.faiss"):
        the file itself for a local run, fetched fresh into the staging copy for a remote one
        (a re-made result can have the same size and other contents)."""
        if self.is_remote:
            if self.store.exists(name):
                self.store.get(name, self.root / name)
            else:                                     # gone from the store: no stale copy
                (self.root / name).unlink(missing_ok=True)
        return self.root / name

    def put_result(self, local_path: Path, name: str) -> None:
        """Store a file the driver made into the run directory under `name` (complete or not
        at all)."""
        if Path(local_path) != self.root / name:
            self.store.put(Path(local_path), name)

    def load_job(self) -> dict:
        if not self.store.exists("job.json"):
            raise UserError(f"{self.store.url} is not a run directory (no job.json)")
        return json.loads(self.store.read_text("job.json"))

    def load_report(self) -> dict:
        return json.loads(self.store.read_text("report.json")) if self.store.exists("report.json") else {}

    def prepare(self, cfg: JobConfig, job: dict) -> bool:
        """Check an existing run against `cfg`; returns True when resuming earlier work."""
        resumed = False
        if self.store.exists("job.json") and not cfg.fresh:
            old = self.load_job()
            if old.get("config_hash") != job["config_hash"]:
                raise UserError(_mismatch_message(self.store.url, old.get("config", {}), cfg))
            resumed = bool(self.part("shards").names(SHARD_GLOB))
        if cfg.fresh:
            self.clear()
        for path in (self.root, self.shards, self.rejects):
            path.mkdir(parents=True, exist_ok=True)
        write_json(self.job_json, job)
        if self.is_remote:
            self.store.put(self.job_json, "job.json")
        return resumed

    def clear(self) -> None:
        for path in (self.shards, self.rejects, self.reuse):
            shutil.rmtree(path, ignore_errors=True)
        for path in (self.h5, self.report_json, self.job_json):
            path.unlink(missing_ok=True)
        if self.is_remote:
            for name in ("shards", "rejects", "reuse"):
                self.part(name).remove_tree()
            for name in ("embeddings.h5", "report.json", "job.json"):
                self.store.remove(name)


def default_staging() -> Path:
    """Where the driver keeps its copy of a remote run (per run URL, reused on resume)."""
    return Path(tempfile.gettempdir()) / "ray-embed-staging"


def _mismatch_message(root: str, old: dict, cfg: JobConfig) -> str:
    new = cfg.to_dict()
    diff = [f"{k}: {old.get(k)!r} -> {_jsonable(new[k])!r}" for k in OUTPUT_DEFINING_FIELDS
            if _jsonable(old.get(k)) != _jsonable(new[k])]
    what = "; ".join(diff) or "settings differ"
    return (f"{root} holds a run with other settings ({what}); use another --output, "
            f"or --fresh to discard it")


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_jsonable) + "\n")
    os.replace(tmp, path)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
