"""The source stage: read units -> rows (key, id, text); rows that cannot be embedded go to
OUT/rejects/ with a reason. Also builds the Ray Dataset of read units."""
from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import pyarrow as pa

from .inputs import ReadUnit
from .keys import make_key
from .readers import read_unit
from .rejects import reject_record, write_rejects
from .text import RejectRow, TextTemplate, record_id

ROW_SCHEMA = pa.schema([("key", pa.int64()), ("id", pa.string()), ("text", pa.string())])
UNIT_FIELDS = tuple(f.name for f in fields(ReadUnit))


def rows_from_unit(unit: ReadUnit, template: TextTemplate, id_field: str,
                   done_keys: np.ndarray | None = None) -> tuple[pa.Table, list[dict]]:
    """Read one unit into a table of embeddable rows and a list of rejects (pure, no Ray)."""
    keys, ids, texts, rejects = [], [], [], []
    for position, item in read_unit(unit):
        key = make_key(unit.file_index, position)
        if done_keys is not None and _contains(done_keys, key):
            continue
        row_id = None
        try:
            if isinstance(item, RejectRow):
                raise item
            row_id = record_id(item, id_field)
            text = template.render(item)
        except RejectRow as reject:
            source = f"{unit.path}:{position}"
            rejects.append(reject_record(reject.reason, reject.detail, key, source, row_id))
            continue
        keys.append(key)
        ids.append(row_id)
        texts.append(text)
    table = pa.table([pa.array(keys, pa.int64()), pa.array(ids, pa.string()),
                      pa.array(texts, pa.string())], schema=ROW_SCHEMA)
    return table, rejects


def _contains(sorted_keys: np.ndarray, key: int) -> bool:
    i = np.searchsorted(sorted_keys, key)
    return bool(i < len(sorted_keys) and sorted_keys[i] == key)


def units_to_rows(batch: pa.Table, template: dict, id_field: str, rejects_dir: str,
                  done_keys=None) -> pa.Table:
    """Ray map_batches function over a batch of read units."""
    import ray

    if isinstance(done_keys, ray.ObjectRef):
        done_keys = ray.get(done_keys)
    tpl = TextTemplate(**template)
    tables = []
    for unit_dict in batch.to_pylist():
        unit = ReadUnit(**unit_dict)
        table, rejects = rows_from_unit(unit, tpl, id_field, done_keys)
        write_rejects(Path(rejects_dir) / f"unit-{unit.name}.jsonl", rejects)
        tables.append(table)
    return pa.concat_tables(tables) if tables else ROW_SCHEMA.empty_table()


def units_dataset(units: list[ReadUnit]):
    """A Ray Dataset with one block per read unit."""
    import ray

    items = [asdict(u) for u in units]
    return ray.data.from_items(items, override_num_blocks=max(1, len(items)))
