"""Rows that are not embedded: JSON Lines files under OUT/rejects/, one per read unit.
Pure helpers; RunDir reads and writes the files."""
from __future__ import annotations

import json
from typing import Iterator


def reject_record(reason: str, detail: str, key: int, source: str, row_id: str | None) -> dict:
    record = {"reason": reason, "detail": detail, "key": key, "source": source}
    if row_id is not None:
        record["id"] = row_id
    return record


def reject_line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


def rejects_text(records: list[dict]) -> str:
    return "".join(reject_line(r) for r in records)


def parse_rejects(text: str) -> Iterator[dict]:
    """The records of a rejects file. Split at newlines only: the JSON of a record holds no
    newline, but it may hold U+2028, U+0085 or \x1c raw (ensure_ascii=False), which
    str.splitlines would also split at."""
    for line in text.split("\n"):
        if line:
            yield json.loads(line)
