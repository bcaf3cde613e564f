"""Rows that are not embedded: JSON Lines files under OUT/rejects/, one per read unit and one
per row rejected after the read stage. Pure helpers; RunDir reads and writes the files."""
from __future__ import annotations

import json
from collections.abc import Iterator


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


# Rows rejected after the read stage travel downstream in their block, as rows carrying their
# reject: the tokenizer and the encoder compute, the shard sink (sink.py) alone writes, so a
# row's reject is committed in the same step as the shard of its block (and a block computed
# again after a lost replica carries the same rejects again).
REJECT_COLUMN = "reject"       # {"stage": ..., "record": ...} as JSON; null: the row is fine


def reject_cell(stage: str, record: dict) -> str:
    """A row's reject as its block carries it: the stage that rejected it and its record."""
    return json.dumps({"stage": stage, "record": record}, ensure_ascii=False)


def reject_cells(table) -> list[str | None]:
    """The reject of each row of `table` (None: the row is fine; none at all without the
    column)."""
    if REJECT_COLUMN not in table.column_names:
        return [None] * table.num_rows
    return table.column(REJECT_COLUMN).to_pylist()


def split_rejected(table) -> tuple[object, list[tuple[str, dict]]]:
    """`table`'s rows that are fine, without the reject column, and (stage, record) of each
    rejected row, in row order."""
    if REJECT_COLUMN not in table.column_names:
        return table, []
    import pyarrow.compute as pc

    column = table.column(REJECT_COLUMN)
    rejects = [(cell["stage"], cell["record"]) for cell in map(json.loads, column.drop_null()
                                                              .to_pylist())]
    kept = table.filter(pc.is_null(column)) if rejects else table
    return kept.drop_columns([REJECT_COLUMN]), rejects
