"""The source stage: read units -> rows (key, id, text); rows that cannot be embedded go to
OUT/rejects/ with a reason. Also builds the Ray Dataset of read units."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Collection

import numpy as np
import pyarrow as pa

from .previous import REUSED, STATUS_NAMES, Previous, id_hashes, text_hash
from .inputs import ReadUnit
from .keys import make_key
from .resume import reads_record, unit_done_keys
from .readers import read_unit
from ..redact import redact_text, redact_url
from ..rundir.rejects import reject_record
from ..rundir.reuse import reuse_table
from .text import SEP_FIELD, RejectRow, TextTemplate, printable, record_id

ROW_SCHEMA = pa.schema([("key", pa.int64()), ("id", pa.string()), ("text", pa.string()),
                        ("text_hash", pa.uint64())])
UNIT_FIELDS = tuple(f.name for f in fields(ReadUnit))


@dataclass
class UnitRows:
    """What one read unit turned into."""
    table: pa.Table                      # rows to encode
    rejects: list[dict]
    seen: int = 0                        # every line / row the reader gave, whatever became of it
    reused: dict = field(default_factory=lambda: {"key": [], "id": [], "text_hash": [],
                                                  "previous_row": []})
    counts: dict = field(default_factory=lambda: {"reused": 0, "new": 0, "changed": 0})


def rows_from_unit(unit: ReadUnit, template: TextTemplate, id_field: str,
                   done_keys: Collection[int] | None = None,
                   previous: Previous | None = None) -> UnitRows:
    """Read one unit into rows to encode, rejects and (incremental runs) reused rows. Pure.
    `done_keys`: keys of this unit already in a shard (a set; a sorted array is accepted)."""
    done_keys = _key_set(done_keys)
    cols: dict[str, list] = {"key": [], "id": [], "text": [], "text_hash": []}
    done_rows: list[bool] = []           # per row built: already in a shard
    out = UnitRows(ROW_SCHEMA.empty_table(), [])
    fields = tuple(f for f in template.fields if f != SEP_FIELD) + (id_field,)
    for position, item in read_unit(unit, fields):
        out.seen += 1
        key = make_key(unit.file_index, position)
        if isinstance(item, RejectRow):
            # before the done check: a duplicate key's reject shares its key with a shard row
            out.rejects.append(_reject(item, key, unit, position))
            continue
        done = key in done_keys
        if done and previous is None:
            continue                     # in a shard already: no need to render or hash it
        try:
            row_id, text, t_hash = row_values(item, template, id_field)
        except RejectRow as reject:
            out.rejects.append(_reject(reject, key, unit, position, _known_id(item, id_field)))
            continue
        for name, value in (("key", key), ("id", row_id), ("text", text), ("text_hash", t_hash)):
            cols[name].append(value)
        done_rows.append(done)
    table = pa.table({name: pa.array(cols[name], ROW_SCHEMA.field(name).type)
                      for name in ROW_SCHEMA.names}, schema=ROW_SCHEMA)
    encode = ~np.array(done_rows, dtype=bool)
    if previous is not None:
        encode &= _classify(previous, cols, out)
    out.table = table if encode.all() else table.filter(pa.array(encode))
    return out


def _classify(previous: Previous, cols: dict[str, list], out: UnitRows) -> np.ndarray:
    """Sort a unit's rows into reused / new / changed in one pass over arrays: counts and the
    reuse list go to `out`; returns which rows still need encoding (not reused)."""
    status, old_row = previous.classify_many(id_hashes(cols["id"]),
                                             np.array(cols["text_hash"], dtype=np.uint64))
    counts = np.bincount(status, minlength=len(STATUS_NAMES))
    out.counts = {name: int(counts[STATUS_NAMES.index(name)]) for name in out.counts}
    reused = np.flatnonzero(status == REUSED).tolist()
    out.reused = {"key": [cols["key"][i] for i in reused],
                  "id": [cols["id"][i] for i in reused],
                  "text_hash": [cols["text_hash"][i] for i in reused],
                  "previous_row": old_row[status == REUSED].tolist()}
    return status != REUSED


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


def units_to_rows(batch: pa.Table, template: dict, id_field: str, run_url: str,
                  previous=None) -> pa.Table:
    """Ray map_batches function over a batch of read units: rows to encode out; each unit's
    rejects (and reuse list) written to the run directory at `run_url`, then its reads record
    (last: it says the unit was read to the end). A unit's done keys come from the shards
    named in its DONE_SHARDS column (resume.py)."""
    import ray

    from ..rundir.rundir import RunDir

    if isinstance(previous, ray.ObjectRef):
        previous = ray.get(previous)
    tpl = TextTemplate(**template)
    run_dir = RunDir(run_url)
    tables = []
    for unit_dict in batch.to_pylist():
        shards = unit_dict.pop(DONE_SHARDS, None) or []
        unit = ReadUnit(**unit_dict)
        done = unit_done_keys(unit, (run_dir.read_shard(name, ["key"]).column("key").to_numpy()
                                     for name in shards))
        rows = rows_from_unit(unit, tpl, id_field, done, previous)
        run_dir.write_unit_rejects(unit.name, rows.rejects)
        if previous is not None:
            run_dir.write_reuse(unit.name, reuse_table(rows.reused), rows.counts)
        run_dir.write_unit_reads(unit.name, reads_record(
            unit, rows.seen, len(rows.rejects), rows.counts["reused"] if previous else 0,
            previous.fingerprint if previous is not None else None))
        tables.append(rows.table)
    return pa.concat_tables(tables) if tables else ROW_SCHEMA.empty_table()


def units_dataset(units: list[ReadUnit], done_shards: list[list[str]] | None = None):
    """A Ray Dataset with one block per read unit; `done_shards`: per unit, the shards that
    hold its keys done by an earlier attempt."""
    import ray

    items = [{**asdict(u), DONE_SHARDS: list(done_shards[i]) if done_shards else []}
             for i, u in enumerate(units)]
    return ray.data.from_items(items, override_num_blocks=max(1, len(items)))
