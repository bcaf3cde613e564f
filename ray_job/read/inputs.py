"""Find the input files and cut them into read units (pure planning, no Ray).

A read unit is a byte range of a plain JSONL file, a whole compressed JSONL file (.gz or .zst:
one task streams it in bounded chunks, see readers.py), a row range
of a Parquet file or a key range of a DuckDB table. Unit boundaries depend only on the files
(never on --limit or the cluster), so rejects files named after units are rewritten
identically on resume. An input is a local path or an fsspec URL (see remote_files): a URL's
files keep their full URL as their path, so read tasks on any node can open them.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass, replace
from pathlib import Path, PurePath

from ..errors import UserError
from ..redact import redact_url
from ..storage.files import is_url, url_path
from ..storage.remote_files import (
    is_glob,
    list_url,
    local_copy,
    open_stream,
    random_access_source,
    user_errors,
)
from .decompress import DAMAGED, open_decompressed
from .hub_repo import SPLIT, is_repo_root, split_files
from .json_array import is_json_array, load_array
from .lines import iter_lines, stream_chunks
from .text import RejectRow

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
ARRAY_SUFFIXES = (".json",)          # the only type that may hold one JSON array of records
PARQUET_SUFFIXES = (".parquet", ".pq")
DUCKDB_SUFFIXES = (".duckdb", ".db", ".ddb")
SQL_ROWS_PER_UNIT = 20_000
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd"}
MIN_BLOCK_BYTES = 256 * 1024
MAX_BLOCK_BYTES = 64 * 1024 * 1024
PARQUET_ROWS_PER_UNIT = 20_000


@dataclass(frozen=True)
class InputFile:
    index: int
    path: str                 # an absolute local path, or a URL with its protocol
    format: str               # jsonl | parquet | duckdb
    compression: str | None   # None | gzip | zstd
    size: int


@dataclass(frozen=True)
class ReadUnit:
    file_index: int
    path: str
    format: str
    compression: str | None
    start: int                # byte offset (jsonl) or row number (parquet)
    end: int | None           # exclusive; None = to the end of the file
    max_rows: int | None = None  # stop after this many rows (limit inside a compressed file)
    relation: str | None = None  # DuckDB: a quoted table name or "(SELECT ...)"
    key_column: str | None = None  # DuckDB: the integer column that orders and keys the rows
    cache_dir: str | None = None   # DuckDB URL: where a node keeps its local copy (None: temp dir)

    @property
    def name(self) -> str:
        return f"{self.file_index:05d}-{self.start:013d}"


def core_suffix(path: str | Path) -> tuple[str, str | None]:
    """The file's type suffix (lower case, "" if none) and its compression, from its name:
    `papers.JSONL.gz` -> (".jsonl", "gzip")."""
    name = url_path(str(path)) if is_url(str(path)) else str(path)
    suffixes = [s.lower() for s in PurePath(name).suffixes]
    compression = COMPRESSIONS.get(suffixes[-1]) if suffixes else None
    core = suffixes[-2] if compression and len(suffixes) > 1 else (suffixes[-1] if suffixes else "")
    return core, compression


def detect_format(path: str | Path) -> tuple[str, str | None]:
    core, compression = core_suffix(path)
    if core in JSONL_SUFFIXES:
        return "jsonl", compression
    if core in PARQUET_SUFFIXES and compression is None:
        return "parquet", None
    if core in DUCKDB_SUFFIXES and compression is None:
        return "duckdb", None
    raise UserError(f"unknown input type for {path}: expected .jsonl/.json "
                    f"(optionally .gz or .zst), .parquet or a DuckDB file (.duckdb/.db)")


def resolve_inputs(paths: list[str] | tuple[str, ...]) -> list[InputFile]:
    """Every input file, in order: local paths and directories, URLs, URL directories/globs."""
    files = [found for raw in paths for found in _expand(raw)]
    out = []
    for index, (path, size) in enumerate(files):
        fmt, comp = detect_format(path)
        out.append(InputFile(index, path, fmt, comp, size))
    return out


def _expand(raw: str) -> list[tuple[str, int]]:
    """(path or URL, size) of the files one input names."""
    return _expand_url(raw) if is_url(raw) else _expand_local(raw)


def _expand_local(raw: str) -> list[tuple[str, int]]:
    p = Path(raw).expanduser()
    if p.is_dir():
        found = sorted(c for c in p.iterdir() if c.is_file() and _is_known(c))
        if not found:
            raise UserError(f"input directory {p} holds no .jsonl/.json(.gz)/.parquet files")
    elif p.is_file():
        found = [p]
    elif is_glob(str(p)):
        found = sorted(c for c in map(Path, glob.glob(str(p), recursive=True))
                       if c.is_file() and _is_known(c))
        if not found:
            raise UserError(f"input not found: no .jsonl/.json(.gz)/.parquet file matches {raw}")
    else:
        raise UserError(f"input not found: {raw}")
    return [(str(c.resolve()), c.stat().st_size) for c in found]


def _expand_url(raw: str) -> list[tuple[str, int]]:
    if is_repo_root(raw):
        found = list_url(raw, wanted=_is_known, recursive=True)
        wanted = set(split_files(raw, [f.url for f in found]))
        found = [f for f in found if f.url in wanted]
        if not found:
            raise UserError(f"dataset {raw} has no .jsonl/.json(.gz)/.parquet files of split "
                            f"{SPLIT!r}: name the files, e.g. {raw.rstrip('/')}/data/*.parquet")
        return [(f.url, f.size) for f in found]
    found = list_url(raw, wanted=_is_known)
    if not found:
        raise UserError(f"input {raw} holds no .jsonl/.json(.gz)/.parquet files")
    return [(f.url, f.size) for f in found]


def _is_known(path: str | Path) -> bool:
    try:
        detect_format(path)
        return True
    except UserError:
        return False


def auto_block_bytes(files: list[InputFile], parallelism: int) -> int:
    total = sum(f.size for f in files)
    target = total // max(1, 4 * parallelism)
    return int(min(MAX_BLOCK_BYTES, max(MIN_BLOCK_BYTES, target)))


@dataclass(frozen=True)
class SqlSpec:
    """What to read from a DuckDB file: a table or a query, keyed by an integer column."""
    key_column: str
    table: str | None = None
    query: str | None = None

    @property
    def relation(self) -> str:
        if self.query:
            from ..sql_query import query_relation

            return query_relation(self.query)
        if not self.table:
            raise UserError("a DuckDB input needs --table NAME or --query 'SELECT ...'")
        return '"' + self.table.replace('"', '""') + '"'


def plan_units(files: list[InputFile], block_bytes: int, limit: int | None,
               sql: SqlSpec | None = None, cache_dir: str | None = None) -> list[ReadUnit]:
    """Read units of every file, in order. `cache_dir`: where DuckDB files behind URLs are
    copied (on this driver and on every node that reads them); None = each node's temp dir."""
    units: list[ReadUnit] = []
    remaining = limit
    for f in files:
        if remaining is not None and remaining <= 0:
            break
        with user_errors(f.path):          # a store's error: one line, without secrets
            if f.format == "duckdb":
                file_units, rows = _duckdb_units(f, sql, remaining, cache_dir)
            else:
                file_units, rows = _file_units(f, block_bytes, remaining)
        units.extend(file_units)
        if remaining is not None:
            remaining -= rows
    return units


def _file_units(f: InputFile, block_bytes: int, limit: int | None) -> tuple[list[ReadUnit], int]:
    """Units of one file and, when a limit applies, how many rows they hold."""
    base = ReadUnit(f.index, f.path, f.format, f.compression, 0, None)
    if f.format == "parquet":
        return _parquet_units(base, limit)
    if core_suffix(f.path)[0] in ARRAY_SUFFIXES and is_json_array(f.path, f.compression):
        return _json_array_units(base, limit)     # a .jsonl / .ndjson is lines, whatever it holds
    if f.compression:
        return [replace(base, max_rows=limit)], (_count_lines_upto(f, limit) if limit else 0)
    end = f.size
    rows = 0
    if limit is not None:
        end, rows = _offset_after_lines(f.path, limit)
    starts = range(0, end, block_bytes)
    return [replace(base, start=s, end=min(s + block_bytes, end)) for s in starts], rows


def _duckdb_units(f: InputFile, sql: SqlSpec | None, limit: int | None,
                  cache_dir: str | None) -> tuple[list[ReadUnit], int]:
    """Key-range units over an integer key column (no OFFSET paging while reading)."""
    from .sql import key_after_rows, key_bounds

    if sql is None:
        raise UserError(f"{f.path} is a DuckDB file: give --table NAME or --query 'SELECT ...'")
    local = local_copy(f.path, cache_dir)
    lo, hi, count = key_bounds(local, sql.relation, sql.key_column)
    if count == 0:
        return [], 0
    n_units = max(1, -(-count // SQL_ROWS_PER_UNIT))
    step = max(1, -(-(hi + 1 - lo) // n_units))
    end = hi + 1
    if limit is not None and limit < count:
        end, count = key_after_rows(local, sql.relation, sql.key_column, limit), limit
    base = ReadUnit(f.index, f.path, "duckdb", None, lo, None, relation=sql.relation,
                    key_column=sql.key_column, cache_dir=cache_dir)
    units = [replace(base, start=s, end=min(s + step, end)) for s in range(lo, end, step)]
    return units, count


def _json_array_units(base: ReadUnit, limit: int | None) -> tuple[list[ReadUnit], int]:
    """One unit for the whole array: rows = its items (counted here, parsed again to read)."""
    try:
        n_rows = len(load_array(base.path, base.compression))
    except RejectRow:
        n_rows = 1                    # read as one bad_json reject
    if limit is not None:
        n_rows = min(n_rows, limit)
    return [replace(base, format="json_array", end=n_rows, max_rows=limit)], n_rows


def _parquet_units(base: ReadUnit, limit: int | None) -> tuple[list[ReadUnit], int]:
    """Units cut at row-group boundaries (a row group is decoded by one unit only): whole row
    groups up to PARQUET_ROWS_PER_UNIT rows together, a larger row group alone."""
    import pyarrow.parquet as pq

    try:
        with random_access_source(base.path) as source:
            meta = pq.ParquetFile(source).metadata
    except Exception as exc:  # noqa: BLE001 - not a Parquet file: pyarrow's errors share no base
        raise UserError(f"cannot read Parquet file {redact_url(base.path)}: {exc}") from None
    n_rows = meta.num_rows if limit is None else min(meta.num_rows, limit)
    bounds = row_group_units([meta.row_group(i).num_rows for i in range(meta.num_row_groups)],
                             PARQUET_ROWS_PER_UNIT)
    units = [replace(base, start=lo, end=min(hi, n_rows)) for lo, hi in bounds if lo < n_rows]
    return units, n_rows


def row_group_units(group_rows: list[int], max_rows: int) -> list[tuple[int, int]]:
    """[start, end) row ranges made of whole consecutive row groups, each at most `max_rows`
    rows unless one group alone is larger."""
    bounds: list[tuple[int, int]] = []
    start = end = 0
    for rows in group_rows:
        if end > start and end - start + rows > max_rows:
            bounds.append((start, end))
            start = end
        end += rows
    if end > start:
        bounds.append((start, end))
    return bounds


def _offset_after_lines(path: str, n_lines: int) -> tuple[int, int]:
    """Byte offset just past the first `n_lines` lines of a plain file, and the lines found
    (read in bounded chunks: a long line is never held whole)."""
    lines = 0
    with open_stream(path) as fh:
        for position, _raw in iter_lines(stream_chunks(fh)):
            if lines >= n_lines:
                return position, lines
            lines += 1
        return fh.tell(), lines


def _count_lines_upto(f: InputFile, n_lines: int) -> int:
    lines = 0
    try:
        with open_decompressed(f.path, f.compression) as fh:
            for _position, raw in iter_lines(stream_chunks(fh), damaged=DAMAGED):
                if isinstance(raw, RejectRow) and raw.reason == "truncated_file":
                    break                 # a damaged file: the reader rejects the rest
                lines += 1
                if lines >= n_lines:
                    break
    except DAMAGED:
        pass
    return lines
