"""The source stage: read units -> rows (key, id, text); rows that cannot be embedded go to
OUT/rejects/ with a reason. Also builds the Ray Dataset of read units."""
from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import pyarrow as pa

from ..redact import redact_text, redact_url, redacting
from ..rundir.rejects import reject_record
from ..rundir.reuse import reuse_table
from ..rundir.stage import RunContext
from .inputs import ReadUnit
from .keys import make_key
from .previous import REUSED, STATUS_NAMES, Previous, id_hashes, text_hash
from .readers import read_unit
from .resume import resume_fields, unit_done_keys
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
                   done_keys: Collection[int] | None = None,
                   previous: Previous | None = None) -> UnitRows:
    """Read one unit into rows to encode, rejects and (incremental runs) reused rows. Pure.
    `done_keys`: keys of this unit already in a shard (a set; a sorted array is accepted)."""
    out = UnitRows(ROW_SCHEMA.empty_table(), [])
    tables = list(stream_unit_rows(out, unit, template, id_field, done_keys, previous))
    out.table = pa.concat_tables(tables) if tables else ROW_SCHEMA.empty_table()
    return out


def stream_unit_rows(out: UnitRows, unit: ReadUnit, template: TextTemplate, id_field: str,
                     done_keys: Collection[int] | None = None, previous: Previous | None = None,
                     chunk_chars: int = CHUNK_TEXT_CHARS,
                     expected: dict | None = None) -> Iterator[pa.Table]:
    """The unit's rows to encode, in tables of about `chunk_chars` characters of text, as they
    are read: a whole compressed file is one unit, and its rows are never all in memory.
    Rejects, counts and reused rows gather in `out` (complete once the generator ends). With
    `previous`, each chunk's rows are classified in one pass (`_classify`) before it goes.
    `expected`: the file's manifest entry, checked while the unit is read (readers.read_unit)."""
    done_keys = _key_set(done_keys)
    cols: dict[str, list] = {"key": [], "id": [], "text": [], "text_hash": []}
    done_rows: list[bool] = []           # per row gathered: already in a shard
    chars = 0
    fields = tuple(f for f in template.fields if f != SEP_FIELD) + (id_field,)
    for position, item in read_unit(unit, fields, expected):
        out.seen += 1
        key = make_key(unit.file_index, position)
        if isinstance(item, RejectRow):
            # before the done check: a duplicate key's reject shares its key with a shard row
            out.rejects.append(_reject(item, key, unit, position))
            continue
        done = key in done_keys
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
        for name, value in (("key", key), ("id", row_id), ("text", text), ("text_hash", t_hash)):
            cols[name].append(value)
        done_rows.append(done)
        chars += len(text)
        if chars >= chunk_chars:
            table = _rows_to_encode(cols, done_rows, previous, out)
            if table.num_rows:
                yield table
            cols, done_rows, chars = {name: [] for name in cols}, [], 0
    table = _rows_to_encode(cols, done_rows, previous, out)
    if table.num_rows:
        yield table


def _rows_to_encode(cols: dict[str, list], done_rows: list[bool], previous: Previous | None,
                    out: UnitRows) -> pa.Table:
    """A chunk's rows less those embedded earlier (done) and, with `previous`, those reused
    (classified here, counted and listed in `out`); rows keep their order."""
    encode = ~np.array(done_rows, dtype=bool)
    if previous is not None:
        encode &= _classify(previous, cols, out)
    table = _row_table(cols)
    return table if encode.all() else table.filter(pa.array(encode))


def _classify(previous: Previous, cols: dict[str, list], out: UnitRows) -> np.ndarray:
    """Sort rows into reused / new / changed in one pass over arrays (not one lookup per
    row): counts and the reuse list gather in `out`; returns which rows are not reused."""
    status, old_row = previous.classify_many(id_hashes(cols["id"]),
                                             np.array(cols["text_hash"], dtype=np.uint64))
    counts = np.bincount(status, minlength=len(STATUS_NAMES))
    for name in out.counts:
        out.counts[name] += int(counts[STATUS_NAMES.index(name)])
    reused = status == REUSED
    for i in np.flatnonzero(reused).tolist():
        for name in ("key", "id", "text_hash"):
            out.reused[name].append(cols[name][i])
    out.reused["previous_row"].extend(old_row[reused].tolist())
    return ~reused


def _row_table(cols: dict[str, list]) -> pa.Table:
    return pa.table({name: pa.array(cols[name], ROW_SCHEMA.field(name).type)
                     for name in ROW_SCHEMA.names}, schema=ROW_SCHEMA)


def _key_set(keys) -> Collection[int]:
    if keys is None:
        return frozenset()
    return set(keys.tolist()) if isinstance(keys, np.ndarray) else keys


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


DONE_SHARDS = "done_shards"         # column of the units dataset: shards holding done keys
EXPECTED = "expected"               # ... and the unit's file as the manifest recorded it


def units_to_rows(batch: pa.Table, context: RunContext) -> Iterator[pa.Table]:
    """The read stage (a Ray map_batches generator over a batch of read units): rows to
    encode out, yielded in bounded tables as they are read (Ray Data takes each as it comes,
    so a task's memory does not grow with a unit: a whole .gz / .zst file is one unit); each
    unit's rejects (and reuse list) and its counts written to the run directory once it is
    read whole (its reads record last). A unit's done keys come from the shards named in its
    DONE_SHARDS column (read/resume.py); its file is checked against its EXPECTED manifest
    entry while it is read (a change fails the task: InputChanged). The template, id field,
    --previous run and run directory (fenced by the driver's lease) come from `context`.
    Errors leave redacted (Ray formats them for the driver and its logs)."""
    with redacting():
        yield from _units_to_rows(batch, context)


def _units_to_rows(batch: pa.Table, context: RunContext) -> Iterator[pa.Table]:
    import ray

    previous = context.previous
    if isinstance(previous, ray.ObjectRef):
        previous = ray.get(previous)
    tpl = TextTemplate(**context.template)
    run_dir = context.run_dir()
    for unit_dict in batch.to_pylist():
        shards = unit_dict.pop(DONE_SHARDS, None) or []
        expected = unit_dict.pop(EXPECTED, None)
        unit = ReadUnit(**unit_dict)
        done = unit_done_keys(unit, (run_dir.shards.read(name, ["key"]).column("key").to_numpy()
                                     for name in shards))
        rows = UnitRows(ROW_SCHEMA.empty_table(), [])
        yield from stream_unit_rows(rows, unit, tpl, context.id_field, done, previous,
                                    expected=expected)
        run_dir.rejects.write_unit(unit.name, rows.rejects)
        if previous is not None:
            run_dir.reads.write_reuse(unit.name, reuse_table(rows.reused), rows.counts)
        run_dir.reads.write_unit(unit.name, {
            **reads_record(rows.seen, rows.capped, tpl.max_bytes),
            **resume_fields(unit, len(rows.rejects), rows.counts["reused"] if previous else 0,
                            previous.fingerprint if previous is not None else None)})


def units_dataset(units: list[ReadUnit], done_shards: list[list[str]] | None = None,
                  manifest: list[dict] | None = None):
    """A Ray Dataset with one block per read unit; `done_shards`: per unit, the shards that
    hold its keys done by an earlier attempt; `manifest`: the plan's, by file index (each
    unit's task checks its file against its entry)."""
    import ray

    items = [{**asdict(u), DONE_SHARDS: list(done_shards[i]) if done_shards else [],
              EXPECTED: manifest[u.file_index] if manifest else None}
             for i, u in enumerate(units)]
    return ray.data.from_items(items, override_num_blocks=max(1, len(items)))
