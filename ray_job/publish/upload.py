"""Publish a finished run: `ray-embed upload DIR DEST`, `run --upload DEST [--upload-every N]`.

DEST picks its target by protocol: hf://datasets/OWNER/NAME[/path] goes to the Hugging Face
Hub (publish_hub.py), anything else to fsspec (publish_fsspec.py: s3://, gs://, file://, ...).
Both upload only what changed and never leave a partial file visible.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..errors import UserError
from ..rundir.mirror import pull_results
from ..rundir.polling import Poller
from .fsspec_target import FsspecTarget
from .hub import HubTarget
from ..rundir.rundir import SHARD_GLOB, RunDir
from ..rundir.store import Store
from .transfer import UploadResult

TARGETS = {"hf": HubTarget}          # protocol -> target; every other protocol: fsspec


def open_target(destination: str):
    protocol = destination.split("://", 1)[0] if "://" in destination else ""
    if not protocol:
        raise UserError(f"upload destination {destination!r} needs a protocol: "
                        f"hf://datasets/OWNER/NAME, s3://bucket/path, file:///path, ...")
    return TARGETS.get(protocol, FsspecTarget)(destination)


def files_to_publish(run_dir: RunDir) -> list[Path]:
    if not run_dir.h5.is_file():
        raise UserError(f"{run_dir.root} has no embeddings.h5 yet: run or finalize it first")
    card = run_dir.root / "README.md"
    card.write_text(dataset_card(run_dir))
    candidates = [run_dir.h5, run_dir.job_json, run_dir.report_json, card,
                  run_dir.root / "embeddings.duckdb", *sorted((run_dir.root / "parquet").glob("*.parquet")),
                  *index_files(run_dir)]
    return [p for p in candidates if p.is_file()]


def index_files(run_dir: RunDir) -> list[Path]:
    """RUN/index/ (ray-embed index), fetched when the run is remote; index.json last."""
    names = sorted(run_dir.store.sub("index").names(), key=lambda n: (n == "index.json", n))
    return [run_dir.local_result(f"index/{name}") for name in names]


def dataset_card(run_dir: RunDir) -> str:
    job = run_dir.load_job()
    report = json.loads(run_dir.report_json.read_text()) if run_dir.report_json.is_file() else {}
    cfg, model = job["config"], job["model"]
    return f"""---
tags: [embeddings, ray-embed]
---
# Paper embeddings: {model['name']}

| | |
|---|---|
| model | `{model['name']}` |
| adapter | `{cfg.get('adapter') or 'none'}` |
| text template | `{cfg['text']}` |
| pooling | {model['pooling']} |
| normalized | {model['normalized']} |
| dim | {report.get('dim', model['dim'])} |
| count | {report.get('rows_embedded', 'see embeddings.h5')} |
| precision | {report.get('precision', cfg['precision'])} |
| max tokens | {model['max_seq_length']} |

Made with `ray-embed` (config hash `{job['config_hash']}`).

```python
import h5py
with h5py.File("embeddings.h5") as h5:
    ids = h5["ids"].asstr("utf-8")[:]   # (N,) paper ids
    emb = h5["embeddings"]              # (N, {model['dim']}), rows in the order of ids
```
"""


def upload(directory: str | Path, destination: str) -> UploadResult:
    run_dir = RunDir.at(directory)
    pull_results(run_dir)
    files = {str(p.relative_to(run_dir.root)): p for p in files_to_publish(run_dir)}
    return open_target(destination).publish(files)


class ShardPublisher(Poller):
    """`--upload-every N`: while the run goes on, publish each N new shard files to
    DEST/shards/, so a crash loses at most N shards of uploads. Shard names come from their
    content, so a name already at the destination is the same shard."""

    def __init__(self, shards: Store, destination: str, every: int, interval: float = 2.0):
        self.shards, self.every, self.interval = shards, every, interval
        self.target = open_target(destination)
        self.sent: set[str] = set()

    def tick(self, final: bool = False) -> None:
        pending = [n for n in self.shards.names(SHARD_GLOB) if n not in self.sent]
        if len(pending) < (1 if final else self.every):
            return
        with tempfile.TemporaryDirectory() as tmp:
            files = {f"shards/{name}": self._local_copy(name, Path(tmp)) for name in pending}
            self.target.put_shards(files)
        self.sent.update(pending)

    def _local_copy(self, name: str, tmp: Path) -> Path:
        if self.shards.is_local:
            return self.shards.local_path / name
        self.shards.get(name, tmp / name)
        return tmp / name
