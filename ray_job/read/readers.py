"""Read one unit into (position, record) pairs; unreadable rows come back as RejectRow.

Plain Python, no Ray: JSONL byte ranges (a line belongs to the range its first byte is in),
whole compressed (.gz, .zst) JSONL files streamed in bounded chunks (a task's memory does not
grow with the file), whole JSON-array files (json_array.py), Parquet row ranges and DuckDB
key ranges. A unit's path may be a URL:
JSONL and Parquet are read where they are (ranged requests), a DuckDB file from a local copy.
"""
from __future__ import annotations

from collections.abc import Iterator

from ..storage.failures import StorageError
from ..storage.files import STREAM_BUFFER_BYTES
from ..storage.remote_files import local_copy, open_stream, random_access_source
from .decompress import DAMAGED, open_decompressed
from .inputs import ReadUnit
from .json_array import BOM, load_array, loads_json
from .lines import Line, first_line_start, iter_lines, range_chunks, stream_chunks
from .manifest import check_identity
from .text import RejectRow

Item = tuple[int, dict | RejectRow]
LINE_SLACK_BYTES = 64 * 1024   # read past a range's end for its last line in the same request


def read_unit(unit: ReadUnit, fields: tuple[str, ...] | None = None,
              expected: dict | None = None) -> Iterator[Item]:
    """The unit's records; `fields`: the record fields the job uses (a columnar reader reads
    only those; a record may hold more). `expected`: the file's manifest entry: its identity
    is checked before the first record and after the last (and when reading fails, which a
    change explains), so a file that changed since the plan, or while the unit was read,
    ends in InputChanged naming it rather than in rows silently lost or mixed."""
    if expected is None:
        yield from _records(unit, fields)
        return
    check_identity(unit.path, expected)
    try:
        yield from _records(unit, fields)
    except Exception:
        check_identity(unit.path, expected)
        raise
    check_identity(unit.path, expected)


def _records(unit: ReadUnit, fields: tuple[str, ...] | None) -> Iterator[Item]:
    if unit.format == "parquet":
        yield from _read_parquet(unit, fields)
        return
    readers = {"jsonl": _read_jsonl, "json_array": _read_json_array, "duckdb": _read_duckdb}
    yield from readers[unit.format](unit)


def parse_json_line(raw: bytes) -> dict:
    if not raw.strip():
        raise RejectRow("blank_line")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RejectRow("bad_utf8", str(exc)) from None
    record = loads_json(text)
    if not isinstance(record, dict):
        raise RejectRow("not_an_object", f"a JSON {type(record).__name__}, not an object")
    return record


def _read_jsonl(unit: ReadUnit) -> Iterator[Item]:
    lines = _compressed_lines(unit) if unit.compression else _range_lines(unit)
    for n, (position, raw) in enumerate(lines):
        if unit.max_rows is not None and n >= unit.max_rows:
            return
        if isinstance(raw, RejectRow):       # line_too_long, or truncated_file (the last)
            yield position, raw
            continue
        if position == 0:
            raw = raw.removeprefix(BOM)      # a byte-order mark starts some exports
        try:
            yield position, parse_json_line(raw)
        except RejectRow as reject:
            yield position, reject


def _read_json_array(unit: ReadUnit) -> Iterator[Item]:
    try:
        items = load_array(unit.path, unit.compression)
    except RejectRow as reject:
        yield 0, reject
        return
    for position, record in enumerate(items[unit.start:unit.end], start=unit.start):
        yield position, (record if isinstance(record, dict) else RejectRow(
            "not_an_object", f"a JSON {type(record).__name__}, not an object"))


def _range_lines(unit: ReadUnit) -> Iterator[Line]:
    """The lines that start in [start, end) of a plain file, read in bounded chunks; a unit
    inside one long line reads only its own range and yields nothing (lines.py)."""
    with open_stream(unit.path, _range_buffer_bytes(unit)) as fh:
        position = first_line_start(fh, unit.start, unit.end)
        if position is None:
            return
        yield from iter_lines(range_chunks(fh, position, unit.end), position, unit.end,
                              name=unit.path)


def _range_buffer_bytes(unit: ReadUnit) -> int:
    """A URL's range comes in one request (up to the stream buffer size), its last line too."""
    if unit.end is None:
        return STREAM_BUFFER_BYTES
    return min(unit.end - unit.start, STREAM_BUFFER_BYTES) + LINE_SLACK_BYTES


def _compressed_lines(unit: ReadUnit) -> Iterator[Line]:
    """Every line of a compressed file, streamed: memory is one chunk plus one line, whatever
    the file's size. Damage ends it with a `truncated_file` reject for the rest."""
    read_any = False
    try:
        with open_decompressed(unit.path, unit.compression) as fh:
            for line in iter_lines(stream_chunks(fh), name=unit.path, damaged=DAMAGED):
                read_any = True
                yield line
    except DAMAGED as exc:     # opening (iter_lines turns damage met while reading into a reject)
        if read_any:
            raise
        yield 0, RejectRow("truncated_file", f"{unit.path}: {exc}; rest of file not read")


def _read_parquet(unit: ReadUnit, fields: tuple[str, ...] | None = None) -> Iterator[Item]:
    import pyarrow.parquet as pq

    with random_access_source(unit.path) as source:
        # pages written with checksums are verified: damage there is found, not decoded
        pf = pq.ParquetFile(source, page_checksum_verification=True)
        yield from _parquet_rows(pf, unit, fields)


def _parquet_rows(pf, unit: ReadUnit, fields: tuple[str, ...] | None = None) -> Iterator[Item]:
    """Rows [start, end) of the file, decoding only the row groups they are in (units are cut
    at row-group boundaries) and only the columns in `fields`. A row group that cannot be
    decoded is a `damaged_row_group` reject for each of its rows (as many as the file's
    metadata says it holds, each with its own key); the other groups are read."""
    columns = None if fields is None else [c for c in pf.schema_arrow.names if c in fields]
    position = 0
    for rg in range(pf.num_row_groups):
        n = pf.metadata.row_group(rg).num_rows
        lo, hi = max(unit.start, position), min(unit.end, position + n)
        if lo < hi:
            yield from _row_group_rows(pf, rg, columns, lo, hi, lo - position, unit.path)
        position += n
        if position >= unit.end:
            return


def _row_group_rows(pf, rg: int, columns, lo: int, hi: int, skip: int, path: str) -> Iterator[Item]:
    """Rows lo .. hi - 1 of the file, in row group `rg` (from its row `skip` on)."""
    try:
        table = pf.read_row_group(rg, columns=columns)
        if table.num_rows != pf.metadata.row_group(rg).num_rows:
            raise ValueError(f"{table.num_rows} rows decoded, the metadata says "
                             f"{pf.metadata.row_group(rg).num_rows}")
        records = table.slice(skip, hi - lo).to_pylist()
    except StorageError:     # the storage failed to answer: the run fails (and resumes)
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow raises OSError, ArrowInvalid, ...
        why = (str(exc).splitlines() or [type(exc).__name__])[0]
        reject = RejectRow("damaged_row_group", f"row group {rg} of {path} cannot be read: {why}")
        for position in range(lo, hi):
            yield position, reject
        return
    for offset, record in enumerate(records):
        yield lo + offset, record


def _read_duckdb(unit: ReadUnit) -> Iterator[Item]:
    from .sql import read_key_range

    path = local_copy(unit.path, unit.cache_dir)
    yield from read_key_range(path, unit.relation, unit.key_column, unit.start, unit.end)
