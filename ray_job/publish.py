"""Publish a finished run to any fsspec URL (s3://, gs://, file://, ...).

Each file goes to a temporary name and is then moved into place, so nothing half-written is
visible under its final name; a MANIFEST.json (sha256 and size of each file) is written last. A
re-run uploads only files whose checksum differs from the manifest's. Endpoints and credentials
come from the standard places (AWS_ENDPOINT_URL, the AWS_* variables, ~/.aws, ...).
"""
from __future__ import annotations

import hashlib
import json
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import UserError
from .polling import Poller
from .mirror import pull_results
from .rundir import SHARD_GLOB, RunDir
from .store import Store

MANIFEST = "MANIFEST.json"
ATTEMPTS = 5


@dataclass
class UploadResult:
    destination: str
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_to_publish(run_dir: RunDir) -> list[Path]:
    if not run_dir.h5.is_file():
        raise UserError(f"{run_dir.root} has no embeddings.h5 yet: run or finalize it first")
    card = run_dir.root / "README.md"
    card.write_text(dataset_card(run_dir))
    candidates = [run_dir.h5, run_dir.job_json, run_dir.report_json, card,
                  run_dir.root / "embeddings.duckdb", *sorted((run_dir.root / "parquet").glob("*.parquet"))]
    return [p for p in candidates if p.is_file()]


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
    ids = h5["ids"][:].astype(str)      # (N,)
    emb = h5["embeddings"]              # (N, {model['dim']}), rows in the order of ids
```
"""


def with_retries(action: Callable[[], None], what: str, sleep: Callable[[float], None] = time.sleep) -> None:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            action()
            return
        except (OSError, ConnectionError, TimeoutError) as exc:
            if attempt == ATTEMPTS:
                raise UserError(f"upload of {what} failed after {ATTEMPTS} attempts: {exc}") from None
            sleep(min(30.0, 0.5 * 2 ** attempt))


def upload(directory: str | Path, destination: str) -> UploadResult:
    import fsspec

    if destination.startswith("hf://"):
        raise UserError("hf:// destinations are not supported yet; use an fsspec URL "
                        "(s3://, gs://, file://)")
    run_dir = RunDir.at(directory)
    pull_results(run_dir)
    files = files_to_publish(run_dir)
    try:
        fs, root = fsspec.core.url_to_fs(destination)
    except (ImportError, ValueError) as exc:
        raise UserError(f"cannot open {destination}: {exc}") from None
    root = root.rstrip("/")
    manifest = _remote_manifest(fs, f"{root}/{MANIFEST}")
    result = UploadResult(destination)
    new_manifest = {}
    for path in files:
        name = str(path.relative_to(run_dir.root))
        entry = {"sha256": sha256_of(path), "size": path.stat().st_size}
        new_manifest[name] = entry
        target = f"{root}/{name}"
        if manifest.get(name) == entry and _exists_with_size(fs, target, entry["size"]):
            result.unchanged.append(name)
            continue
        _put_atomically(fs, path, target)
        result.uploaded.append(name)
    if result.uploaded or manifest != new_manifest:
        tmp = run_dir.root / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(new_manifest, indent=2, sort_keys=True) + "\n")
        _put_atomically(fs, tmp, f"{root}/{MANIFEST}")
        tmp.unlink()
    return result


def _remote_manifest(fs, path: str) -> dict:
    try:
        with fs.open(path, "rb") as fh:
            return json.loads(fh.read())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _exists_with_size(fs, path: str, size: int) -> bool:
    try:
        return fs.info(path).get("size") == size
    except FileNotFoundError:
        return False


def _put_atomically(fs, local: Path, target: str) -> None:
    parent = target.rsplit("/", 1)[0]
    tmp = f"{parent}/.partial-{uuid.uuid4().hex[:12]}-{target.rsplit('/', 1)[1]}"
    with_retries(lambda: fs.makedirs(parent, exist_ok=True), target)
    with_retries(lambda: fs.put_file(str(local), tmp), target)
    with_retries(lambda: fs.mv(tmp, target), target)
    fs.invalidate_cache(parent)


class ShardPublisher(Poller):
    """`--upload-every N`: while the run goes on, copy each N new shard files to DEST/shards/,
    so a crash loses at most N shards of uploads. Shard names come from their content, so a name
    already at the destination is the same shard."""

    def __init__(self, shards: Store, destination: str, every: int, interval: float = 2.0):
        import fsspec

        self.shards, self.every, self.interval = shards, every, interval
        self.fs, root = fsspec.core.url_to_fs(destination)
        self.root = root.rstrip("/") + "/shards"
        self.sent: set[str] = set()

    def tick(self, final: bool = False) -> None:
        pending = [n for n in self.shards.names(SHARD_GLOB) if n not in self.sent]
        if len(pending) < (1 if final else self.every):
            return
        with tempfile.TemporaryDirectory() as tmp:
            for name in pending:
                local = self._local_copy(name, Path(tmp))
                _put_atomically(self.fs, local, f"{self.root}/{name}")
                self.sent.add(name)

    def _local_copy(self, name: str, tmp: Path) -> Path:
        if self.shards.is_local:
            return self.shards.local_path / name
        self.shards.get(name, tmp / name)
        return tmp / name
