"""Operations on a run directory for the property-based harness (test_properties_run.py):
run, a driver killed at a chosen point, resume with other flags, --fresh, finalize again, a
--previous run on a changed corpus; and the check of a finished run against the oracle
(corpus_oracle.py) and a direct encode of the oracle's texts with the same tiny model.

A kill happens in this process, on the session's Ray: the driver raises `Killed` (a
BaseException nothing in the job catches) at the chosen point, and what a SIGKILL leaves
behind that an exception does not is then put back: the lease of a dead driver of this host
and a writer's half-written temp file."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import h5py
import numpy as np
from corpus_oracle import Expected, text_hash

USER_FILES = {"README.md": "# my notes\n", "parquet/2025.parquet": "mine",
              "index/notes.txt": "mine", "reads/todo.txt": "mine"}


class Killed(BaseException):
    """The driver 'dies' here."""


@dataclass(frozen=True)
class Flags:
    shard_rows: int = 8
    replicas: int | None = None
    block_bytes: int | None = None
    max_batch_tokens: int | None = None

    def settings(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None}


def kill_points():
    """name -> (patch target, how many calls pass before the kill)."""
    from ray_job.rundir.reject_files import RejectFiles
    from ray_job.rundir.rundir import RunDir
    from ray_job.rundir.tally import ShardTally

    return {"encode": (ShardTally, "add"), "report": (RunDir, "write_report"),
            "duplicates": (RejectFiles, "write_duplicates")}


@contextlib.contextmanager
def killed_at(point: str, after: int):
    owner, name = kill_points()[point]
    original = getattr(owner, name)
    calls = [0]

    def dying(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] > after:
            raise Killed(f"{point} #{calls[0]}")
        return original(self, *args, **kwargs)

    with mock.patch.object(owner, name, dying):
        yield


def leave_kill_debris(out: Path) -> None:
    """What a SIGKILL leaves that an exception does not: the lease (its driver gone, on this
    host) and a temp file of a writer cut short."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    import socket

    (out / "lease.json").write_text(json.dumps({
        "owner": "killed", "host": socket.gethostname(), "pid": int(dead),
        "started": time.time(), "heartbeat": time.time()}))
    (out / "shards").mkdir(exist_ok=True)
    (out / "shards" / ".part-0000000000000000-1-00000000.arrow.deadbeef.tmp").write_bytes(b"cut")


@contextlib.contextmanager
def unchanged(out: Path):
    """The block (a refusal) leaves every file of `out` as it was (a stale lease taken over
    and given back aside)."""
    def state():
        return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in out.rglob("*")
                if p.is_file() and p.name != "lease.json"}

    before = state()
    try:
        yield
    finally:
        assert state() == before, "a refusal changed the run directory"


def plant_user_files(out: Path) -> None:
    for name, text in USER_FILES.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)


def assert_user_files_intact(out: Path) -> None:
    for name, text in USER_FILES.items():
        assert (out / name).read_text() == text, f"{name} was touched"


def job_config(inputs: Path, out: Path, model: str, flags: Flags, **more):
    from ray_job.config import JobConfig

    return JobConfig.of(inputs=(str(inputs),), output=str(out), model=model, pooling="mean",
                        precision="fp32", **flags.settings(), **more)


def copy_corpus(files: list, folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for f in files:
        f.write(folder)
    return folder


@dataclass(frozen=True)
class Changes:
    """How the next snapshot differs from a corpus: a file added (after the others), maybe
    one dropped, and in each JSON-lines file maybe one record's abstract changed (same id:
    its old vector must not be reused) and a record appended."""
    new_file: object                      # a GenFile
    drop: int | None = None               # which file (modulo their number), when more than one
    change_line: int | None = None        # which line (modulo the file's lines)
    appended: dict | None = None

    def apply(self, files: list) -> list:
        files = [self._changed(f) for f in files]
        if self.drop is not None and len(files) > 1:
            files.pop(self.drop % len(files))
        stem = f"f{int(max(f.stem[1:] for f in files)) + 1:02d}" if files else "f00"
        return files + [dataclasses.replace(self.new_file, stem=stem)]

    def _changed(self, f):
        from corpus_strategies import json_line

        if f.kind not in ("jsonl", "jsonl_gz"):
            return f
        lines = list(f.lines)
        if self.change_line is not None and lines:
            at = self.change_line % len(lines)
            try:
                record = json.loads(lines[at])
            except ValueError:
                record = None
            if isinstance(record, dict):
                lines[at] = json_line({**record, "abstract": "a changed abstract"}, True)
        if self.appended is not None:
            lines.append(json_line(self.appended, True))
        return dataclasses.replace(f, lines=lines)


def check_run(out: Path, exp: Expected, report: dict, encode) -> None:
    """A finished run is what the oracle says: ids in key order, text hashes, vectors equal to
    a direct encode of the texts, every other row a reject with its reason, reconciled."""
    with h5py.File(out / "embeddings.h5") as h5:
        ids = [i.decode("utf-8") for i in h5["ids"][:]]
        hashes, vectors = h5["text_hashes"][:], h5["embeddings"][:]
    assert ids == [r.id for r in exp.kept]
    assert hashes.tolist() == [text_hash(r.text) for r in exp.kept]
    np.testing.assert_allclose(vectors, encode([r.text for r in exp.kept]), rtol=1e-4, atol=2e-5)
    rejects = {}
    for path in (out / "rejects").glob("*.jsonl"):
        for line in path.read_text().split("\n")[:-1]:
            record = json.loads(line)
            assert record["reason"] and record["key"] not in rejects
            rejects[record["key"]] = record["reason"]
    assert rejects == exp.rejects
    assert report["rows_embedded"] == len(exp.kept) and report["rows_rejected"] == len(exp.rejects)
    assert report["reconciliation"]["rows_seen"] == exp.rows
    assert not (out / "lease.json").exists()
