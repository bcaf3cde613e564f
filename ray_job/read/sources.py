"""The source stage: read units -> rows (key, id, text); rows that cannot be embedded go to
OUT/rejects/ with a reason. Also builds the Ray Dataset of read units."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Iterator

import numpy as np
import pyarrow as pa

from .previous import Previous, text_hash
from .inputs import ReadUnit
from .keys import make_key
from .readers import read_unit
from ..redact import redact_text, redact_url
from ..rundir.rejects import reject_record
from ..rundir.reuse import reuse_table
from .text import SEP_FIELD, RejectRow, TextTemplate, cap_text, printable, reads_record, record_id

ROW_SCHEMA = pa.schema([("key", pa.int64()), ("id", pa.string()), ("text", pa.string()),
                        ("text_hash", pa.uint64())])
UNIT_FIELDS = tuple(f.name for f in fields(ReadUnit))
CHUNK_TEXT_CHARS = 16 * 1024 * 1024    # text per table a read task yields (Ray Data blocks)


@dataclass
class UnitRows:
    """What one read unit turned into."""
    table: pa.Table                      # rows to encode
    rejects: list[dict]
    seen: int = 0                        # every line / row the reader gave, whatever became of it
    capped: int = 0                      # texts cut to the template's max_bytes
    reused: dict = field(default_factory=lambda: {"key": [], "id": [], "text_hash": [],
                                                  "previous_row": []})
    counts: dict = field(default_factory=lambda: {"reused": 0, "new": 0, "changed": 0})


def rows_from_unit(unit: ReadUnit, template: TextTemplate, id_field: str,
                   done_keys: np.ndarray | None = None,
                   previous: Previous | None = None) -> UnitRows:
    """Read one unit into rows to encode, rejects and (incremental runs) reused rows. Pure."""
    out = UnitRows(ROW_SCHEMA.empty_table(), [])
    tables = list(stream_unit_rows(out, unit, template, id_field, done_keys, previous))
    out.table = pa.concat_tables(tables) if tables else ROW_SCHEMA.empty_table()
    return out


def stream_unit_rows(out: UnitRows, unit: ReadUnit, template: TextTemplate, id_field: str,
                     done_keys: np.ndarray | None = None, previous: Previous | None = None,
                     chunk_chars: int = CHUNK_TEXT_CHARS) -> Iterator[pa.Table]:
    """The unit's rows to encode, in tables of about `chunk_chars` characters of text, as they
    are read: a whole compressed file is one unit, and its rows are never all in memory.
    Rejects, counts and reused rows gather in `out` (complete once the generator ends)."""
    cols: dict[str, list] = {"key": [], "id": [], "text": [], "text_hash": []}
    chars = 0
    fields = tuple(f for f in template.fields if f != SEP_FIELD) + (id_field,)
    for position, item in read_unit(unit, fields):
        out.seen += 1
        key = make_key(unit.file_index, position)
        if isinstance(item, RejectRow):
            # before the done check: a duplicate key's reject shares its key with a shard row
            out.rejects.append(_reject(item, key, unit, position))
            continue
        done = done_keys is not None and _contains(done_keys, key)
        if done and previous is None:
            out.capped += template.would_cap(item)   # counted alike on every attempt
            continue                     # in a shard already: no need to render or hash it
        try:
            row_id, text, t_hash = row_values(item, template, id_field)
        except RejectRow as reject:
            out.rejects.append(_reject(reject, key, unit, position, _known_id(item, id_field)))
            continue
        text, capped = cap_text(text, template.max_bytes)   # the hash stays the full text's
        out.capped += capped
        if previous is not None:
            status, old_row = previous.classify(row_id, t_hash)
            out.counts[status] += 1
            if status == "reused":
                for name, value in (("key", key), ("id", row_id), ("text_hash", t_hash),
                                    ("previous_row", old_row)):
                    out.reused[name].append(value)
                continue
        if done:
            continue                     # embedded by an earlier attempt (counted above)
        for name, value in (("key", key), ("id", row_id), ("text", text), ("text_hash", t_hash)):
            cols[name].append(value)
        chars += len(text)
        if chars >= chunk_chars:
            yield _row_table(cols)
            cols, chars = {name: [] for name in cols}, 0
    if cols["key"]:
        yield _row_table(cols)


def _row_table(cols: dict[str, list]) -> pa.Table:
    return pa.table({name: pa.array(cols[name], ROW_SCHEMA.field(name).type)
                     for name in ROW_SCHEMA.names}, schema=ROW_SCHEMA)


def row_values(record: dict, template: TextTemplate, id_field: str) -> tuple[str, str, int]:
    """A record's id, text and text hash, each valid UTF-8 (so Arrow, the hash and the
    tokenizer can take them). Any failure on the way is this row's RejectRow, never the
    task's: a template error, an odd value, a bug the row triggers."""
    try:
        row_id = record_id(record, id_field)
        text = template.render(record)
        return row_id, text, text_hash(text)
    except RejectRow:
        raise
    except Exception as exc:  # noqa: BLE001 - one row must not fail its whole unit
        raise RejectRow("bad_row", f"{type(exc).__name__}: {exc}") from None


def _known_id(record: dict, id_field: str) -> str | None:
    """The row's id for a reject record where it has a usable one."""
    try:
        return record_id(record, id_field)
    except Exception as exc:  # noqa: BLE001 - RejectRow, or whatever made the row a reject
        return getattr(exc, "row_id", None)


def _reject(reject: RejectRow, key: int, unit: ReadUnit, position: int,
            row_id: str | None = None) -> dict:
    """A reject record that can always be written (unencodable characters escaped) and holds
    no credentials of the input's URL."""
    row_id = reject.row_id or row_id
    source = f"{printable(redact_url(unit.path))}:{position}"
    return reject_record(reject.reason, redact_text(printable(reject.detail)), key, source,
                         printable(row_id) if row_id is not None else None)


def _contains(sorted_keys: np.ndarray, key: int) -> bool:
    i = np.searchsorted(sorted_keys, key)
    return bool(i < len(sorted_keys) and sorted_keys[i] == key)


def units_to_rows(batch: pa.Table, template: dict, id_field: str, run_url: str,
                  done_keys=None, previous=None) -> Iterator[pa.Table]:
    """Ray map_batches generator over a batch of read units: rows to encode out, yielded in
    bounded tables as they are read (Ray Data takes each as it comes, so a task's memory does
    not grow with a unit: a whole .gz / .zst file is one unit); each unit's rejects (and reuse
    list) and its counts written to the run directory at `run_url` once it is read whole."""
    import ray

    from ..rundir.rundir import RunDir

    if isinstance(done_keys, ray.ObjectRef):
        done_keys = ray.get(done_keys)
    if isinstance(previous, ray.ObjectRef):
        previous = ray.get(previous)
    tpl = TextTemplate(**template)
    run_dir = RunDir(run_url)
    for unit_dict in batch.to_pylist():
        unit = ReadUnit(**unit_dict)
        rows = UnitRows(ROW_SCHEMA.empty_table(), [])
        yield from stream_unit_rows(rows, unit, tpl, id_field, done_keys, previous)
        run_dir.write_unit_rejects(unit.name, rows.rejects)
        if previous is not None:
            run_dir.write_reuse(unit.name, reuse_table(rows.reused), rows.counts)
        run_dir.write_unit_reads(unit.name, reads_record(rows.seen, rows.capped, tpl.max_bytes))


def units_dataset(units: list[ReadUnit]):
    """A Ray Dataset with one block per read unit."""
    import ray

    items = [asdict(u) for u in units]
    return ray.data.from_items(items, override_num_blocks=max(1, len(items)))
