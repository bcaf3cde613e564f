"""The driver's local copy of a run whose store is remote (s3://..., gs://...).

Workers write shards/, rejects/ and reuse/ straight to the store. Before it checks shards or
finalizes, the driver mirrors those folders into its staging directory (a shard's name says
what it holds, so a file already there with the same size is not fetched again); after it
finalizes, it publishes what it made to the store. For a local run both are no-ops.
"""
from __future__ import annotations

from pathlib import Path

from .rundir import SHARD_GLOB, RunDir
from .store import Store

WORK_PARTS = {"shards": SHARD_GLOB, "rejects": "*.jsonl", "reuse": "unit-*"}
RESULT_FILES = ("embeddings.h5", "report.json", "embeddings.duckdb")
RESULT_DIRS = {"parquet": "*.parquet", "rejects": "duplicates.jsonl"}


def pull_work(run_dir: RunDir) -> int:
    """Mirror shards/, rejects/ and reuse/ from the store; returns how many files came."""
    if not run_dir.is_remote:
        return 0
    return sum(_mirror_folder(run_dir, part, pattern) for part, pattern in WORK_PARTS.items())


def _mirror_folder(run_dir: RunDir, part: str, pattern: str) -> int:
    remote = run_dir.part(part).sizes(pattern)
    local_dir = run_dir.root / part
    local_dir.mkdir(parents=True, exist_ok=True)
    for stale in local_dir.glob(pattern):
        if stale.name not in remote:
            stale.unlink()
    return sum(_fetch(run_dir.part(part), name, size, local_dir / name)
               for name, size in remote.items())


def _fetch(store: Store, name: str, size: int, target: Path) -> bool:
    """Copy one file out unless an equal-sized copy is already there (a shard's name says
    what it holds; a unit's rejects or reuse file is the same whenever it is rewritten)."""
    if target.is_file() and target.stat().st_size == size:
        return False
    store.get(name, target)
    return True


def pull_results(run_dir: RunDir) -> None:
    """Fetch a remote run's job.json and finished files (to search or upload it from here)."""
    if not run_dir.is_remote:
        return
    # always fetched: a re-finalized result can have the same size and other contents
    for name in set(run_dir.store.names("*")) & {"job.json", *RESULT_FILES}:
        run_dir.store.get(name, run_dir.root / name)
    for folder, pattern in RESULT_DIRS.items():
        for name in run_dir.part(folder).names(pattern):
            run_dir.part(folder).get(name, run_dir.root / folder / name)


def push_results(run_dir: RunDir) -> list[str]:
    """Publish the finalizer's files to the store; returns their names (relative)."""
    if not run_dir.is_remote:
        return []
    pushed = []
    for path in _result_paths(run_dir.root):
        name = str(path.relative_to(run_dir.root))
        run_dir.store.put(path, name)
        pushed.append(name)
    if not (run_dir.rejects / "duplicates.jsonl").is_file():
        run_dir.part("rejects").remove("duplicates.jsonl")
    return pushed


def _result_paths(root: Path) -> list[Path]:
    # the h5 last but one and report.json last: a reader that sees report.json sees the rest
    found = [root / name for name in RESULT_FILES if (root / name).is_file()]
    for folder, pattern in RESULT_DIRS.items():
        found += sorted((root / folder).glob(pattern))
    return sorted(found, key=lambda p: (p.name == "report.json", p.name == "embeddings.h5"))
