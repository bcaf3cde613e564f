"""Rows that are not embedded: JSON Lines files under OUT/rejects/, one per read unit."""
from __future__ import annotations

import collections
import json
import os
from pathlib import Path


def reject_record(reason: str, detail: str, key: int, source: str, row_id: str | None) -> dict:
    record = {"reason": reason, "detail": detail, "key": key, "source": source}
    if row_id is not None:
        record["id"] = row_id
    return record


def write_rejects(path: Path, records: list[dict]) -> None:
    """Write (or clear) one rejects file atomically; the same unit always writes the same file."""
    if not records:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    with open(tmp, "w") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def iter_rejects(rejects_dir: Path):
    for path in sorted(rejects_dir.glob("*.jsonl")):
        with open(path) as fh:
            for line in fh:
                yield json.loads(line)


def count_by_reason(rejects_dir: Path) -> dict[str, int]:
    counts = collections.Counter(r["reason"] for r in iter_rejects(rejects_dir))
    return dict(sorted(counts.items()))
