"""DuckDB inputs: planning queries and the key-range reader (read-only connections)."""
from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

from ..errors import UserError
from .keys import MAX_POSITION
from .text import RejectRow

INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT",
                 "UINTEGER", "UBIGINT", "HUGEINT")


def connect(path: str):
    import duckdb

    try:
        return duckdb.connect(path, read_only=True)
    except duckdb.Error as exc:
        raise UserError(f"cannot open DuckDB file {path}: {str(exc).splitlines()[0]}") from None


def _column(key: str) -> str:
    return '"' + key.replace('"', '""') + '"'


def _execute(con, sql: str, params=()):
    import duckdb

    try:
        return con.execute(sql, params)
    except duckdb.Error as exc:
        raise UserError(f"DuckDB: {str(exc).splitlines()[0]}") from None


def key_bounds(path: str, relation: str, key: str) -> tuple[int, int, int]:
    """min, max and count of the key column; it must be a non-negative integer column."""
    with connect(path) as con:
        col = _column(key)
        kind = _execute(con, f"SELECT typeof({col}) FROM {relation} LIMIT 1").fetchone()
        if kind and kind[0].upper() not in INTEGER_TYPES:
            raise UserError(f"--id-field {key} must be an integer column in DuckDB inputs "
                            f"(it orders and keys the rows); it is {kind[0]}")
        lo, hi, count, nulls = _execute(
            con, f"SELECT min({col}), max({col}), count({col}), count(*) - count({col}) "
                 f"FROM {relation}").fetchone()
    if nulls:
        raise UserError(f"--id-field {key} has {nulls} NULL values")
    if count and (lo < 0 or hi > MAX_POSITION):
        raise UserError(f"--id-field {key} values must lie in 0..{MAX_POSITION}")
    return (lo or 0), (hi or 0), count


def key_after_rows(path: str, relation: str, key: str, n_rows: int) -> int:
    """The smallest key past the first `n_rows` rows in key order (planning only)."""
    with connect(path) as con:
        col = _column(key)
        row = _execute(con, f"SELECT {col} FROM {relation} ORDER BY {col} LIMIT 1 OFFSET ?",
                       (n_rows - 1,)).fetchone()
    return int(row[0]) + 1


def read_key_range(path: str, relation: str, key: str, start: int, end: int,
                   batch_rows: int = 4096) -> Iterator[tuple[int, dict | RejectRow]]:
    with connect(path) as con:
        col = _column(key)
        result = _execute(con, f"SELECT * FROM {relation} WHERE {col} >= ? AND {col} < ? "
                               f"ORDER BY {col}", (start, end))
        # DuckDB 2 renamed fetch_record_batch to to_arrow_reader
        batches = getattr(result, "to_arrow_reader", None) or result.fetch_record_batch
        reader = batches(batch_rows)
        records = ((int(record[key]), record) for batch in reader for record in batch.to_pylist())
        yield from one_row_per_key(records, key)


def one_row_per_key(records: Iterator[tuple[int, dict]],
                    key: str) -> Iterator[tuple[int, dict | RejectRow]]:
    """Records in key order, one per key value: the key is the row's position (its identity in
    shards, rejects and resume), so of rows that repeat a value one is kept, the first in an
    order of their contents (not DuckDB's order of equal keys, which may differ from run to
    run), and each other one is a `duplicate_key` reject. Only a repeated value's rows are
    held in memory."""
    for value, group in itertools.groupby(records, key=lambda item: item[0]):
        rows = [record for _, record in group]
        if len(rows) > 1:
            rows.sort(key=_contents)
        yield value, rows[0]
        for _ in rows[1:]:
            yield value, RejectRow("duplicate_key", f"{key} = {value} is on {len(rows)} rows; "
                                                    f"one of them is kept", str(value))


def _contents(record: dict) -> str:
    return json.dumps(record, sort_keys=True, default=repr)
