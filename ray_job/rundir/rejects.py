"""Rows that are not embedded: JSON Lines files under OUT/rejects/, one per read unit."""
from __future__ import annotations

import collections
import json

from .store import Store


def reject_record(reason: str, detail: str, key: int, source: str, row_id: str | None) -> dict:
    record = {"reason": reason, "detail": detail, "key": key, "source": source}
    if row_id is not None:
        record["id"] = row_id
    return record


def write_rejects(directory: Store, name: str, records: list[dict]) -> None:
    """Write (or clear) one rejects file whole; the same unit always writes the same file."""
    if not records:
        directory.remove(name)
        return
    directory.write_text(name, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def iter_rejects(directory: Store):
    for name in directory.names("*.jsonl"):
        for line in directory.read_text(name).splitlines():
            yield json.loads(line)


def count_by_reason(directory: Store) -> dict[str, int]:
    counts = collections.Counter(r["reason"] for r in iter_rejects(directory))
    return dict(sorted(counts.items()))
