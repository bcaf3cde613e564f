"""The run directory is the state: job.json, shards/, rejects/, report.json, embeddings.h5."""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .config import OUTPUT_DEFINING_FIELDS, JobConfig
from .errors import UserError


@dataclass(frozen=True)
class RunDir:
    root: Path

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

    def load_job(self) -> dict:
        if not self.job_json.is_file():
            raise UserError(f"{self.root} is not a run directory (no job.json)")
        return json.loads(self.job_json.read_text())

    def prepare(self, cfg: JobConfig, job: dict) -> bool:
        """Check an existing run against `cfg`; returns True when resuming earlier work."""
        resumed = False
        if self.job_json.is_file() and not cfg.fresh:
            old = self.load_job()
            if old.get("config_hash") != job["config_hash"]:
                raise UserError(_mismatch_message(self.root, old.get("config", {}), cfg))
            resumed = bool(list(self.shards.glob("part-*.arrow")))
        if cfg.fresh:
            self.clear()
        self.root.mkdir(parents=True, exist_ok=True)
        self.shards.mkdir(exist_ok=True)
        self.rejects.mkdir(exist_ok=True)
        write_json(self.job_json, job)
        return resumed

    def clear(self) -> None:
        for path in (self.shards, self.rejects, self.reuse):
            shutil.rmtree(path, ignore_errors=True)
        for path in (self.h5, self.report_json, self.job_json):
            path.unlink(missing_ok=True)


def _mismatch_message(root: Path, old: dict, cfg: JobConfig) -> str:
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
