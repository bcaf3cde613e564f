"""What a run must make of a generated corpus (corpus_strategies.GenFile), written from the
documented rules (docs/guide.md, "Inputs") and not from ray_job's code:

- a row's key is (file index << 40) | position: the byte offset of a JSON line (of the
  decompressed bytes), the index in a JSON array, the row number in a Parquet file;
- `.jsonl` / `.ndjson` (and `.jsonl.gz`) are lines whatever their first line holds; only a
  `.json` file whose first character is `[` is one array (one bad_json row when it is not);
- an id is a JSON/Parquet string (exactly as given) or an integer (its decimal digits);
  missing, null, empty or all-whitespace: missing_id; another type: bad_type_id; a string
  with NUL or a lone surrogate: bad_id;
- the text is clean(title) + SEP + clean(abstract), each field a non-blank string of valid
  UTF-8 (else missing_ / bad_type_ / bad_text), checked after the id;
- duplicate ids: the first valid row in key order wins, the others are duplicate_id;
- a damaged Parquet row group: each of its rows is damaged_row_group.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from corpus_strategies import GenFile

FIELDS = ("title", "abstract")
POSITION_BITS = 40


@dataclass(frozen=True)
class Row:
    key: int
    id: str | None           # the row's id when it has a valid one (kept or not)
    text: str | None
    reason: str | None       # None: embedded (or a duplicate, see Expected)
    title: str | None        # the cleaned title of a readable record, for the index titles


@dataclass
class Expected:
    kept: list[Row]                  # the output, in key order
    rejects: dict[int, str]          # key -> reason, duplicates included
    rows: int                        # every row a reader sees
    records: list[Row]               # every readable record in key order (titles' matching)


def clean(text: str) -> str:
    return " ".join(text.split())


def text_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def expected_id(record: dict) -> tuple[str | None, str | None]:
    """(id, None) or (None, reject reason)."""
    value = record.get("id")
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, "missing_id"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None, "bad_type_id"
    row_id = value if isinstance(value, str) else str(value)
    if "\x00" in row_id or not _utf8(row_id):
        return None, "bad_id"
    return row_id, None


def expected_text(record: dict, sep: str) -> tuple[str | None, str | None]:
    parts = []
    for name in FIELDS:
        value = record.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None, f"missing_{name}"
        if not isinstance(value, str):
            return None, f"bad_type_{name}"
        if not _utf8(value):
            return None, "bad_text"
        parts.append(clean(value))
    return sep.join(parts), None


def _utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_line(raw: bytes) -> dict | str:
    """A JSON line's record, or its reject reason."""
    if not raw.strip():
        return "blank_line"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "bad_utf8"
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return "bad_json"
    return value if isinstance(value, dict) else "not_an_object"


def file_items(f: GenFile) -> list[tuple[int, dict | str]]:
    """(position, record or reject reason) of every row a reader sees in the file."""
    if f.kind == "parquet":
        groups = {i: i // f.group_rows for i in range(len(f.values))}
        return [(i, "damaged_row_group" if groups[i] == f.damaged_group else r)
                for i, r in enumerate(f.values)]
    if f.kind == "json_array":
        if f.damaged_array:
            return [(0, "bad_json")]
        return [(i, v if isinstance(v, dict) else "not_an_object") for i, v in enumerate(f.values)]
    data = b"".join(line + b"\n" for line in f.lines)
    if f.ext == ".json" and data.lstrip().startswith(b"["):
        return _as_array(data)
    items, position = [], 0
    for line in f.lines:
        items.append((position, parse_line(line)))
        position += len(line) + 1
    return items


def _as_array(data: bytes) -> list[tuple[int, dict | str]]:
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:          # as load_array: the whole file, one bad_utf8 reject
        return [(0, "bad_utf8")]
    except (ValueError, RecursionError):
        return [(0, "bad_json")]
    if not isinstance(value, list):
        return [(0, "bad_json")]
    return [(i, v if isinstance(v, dict) else "not_an_object") for i, v in enumerate(value)]


def expected(files: list[GenFile], sep: str = " [SEP] ", limit: int | None = None) -> Expected:
    rows: list[Row] = []
    for index, f in enumerate(files):
        for position, item in file_items(f):
            rows.append(_row((index << POSITION_BITS) | position, item, sep))
    rows = rows[:limit] if limit is not None else rows
    kept, rejects, seen = [], {}, set()
    for row in rows:
        if row.reason is not None:
            rejects[row.key] = row.reason
        elif row.id in seen:
            rejects[row.key] = "duplicate_id"
        else:
            seen.add(row.id)
            kept.append(row)
    records = [r for r in rows if r.id is not None]
    return Expected(kept, rejects, len(rows), records)


def _row(key: int, item: dict | str, sep: str) -> Row:
    if isinstance(item, str):
        return Row(key, None, None, item, None)
    row_id, reason = expected_id(item)
    title = item.get("title")
    title = clean(title) if isinstance(title, str) and title.strip() and _utf8(title) else None
    if reason:
        return Row(key, None, None, reason, None)
    text, reason = expected_text(item, sep)
    return Row(key, row_id, text, reason, title)


def expected_titles(exp: Expected) -> list[str | None]:
    """index/titles.arrow as the guide has it: each output row's title from the first
    readable record, at or after the previous match, with the same id."""
    titles, at = [], 0
    for kept in exp.kept:
        while exp.records[at].id != kept.id:
            at += 1
        titles.append(exp.records[at].title)
        at += 1
    return titles
