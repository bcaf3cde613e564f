"""The sampled rows' fields read again by key, from the real sample as JSON Lines (plain:
one short read per stretch; gzip: the unit read once), Parquet (row ranges) and a file
changed since the plan (fewer fields and one line, never another paper's)."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ray_job.quality.sample import sample_rows
from ray_job.quality.sample_fields import sample_records as fields_of
from ray_job.read.inputs import SqlSpec, plan_units, resolve_inputs
from ray_job.read.keys import make_key
from ray_job.read.manifest import build_manifest
from ray_job.read.plan import ReadPlan
from ray_job.read.readers import read_unit

FIELDS = ("categories", "title")


def write_input(kind: str, records: list[dict], folder):
    if kind == "parquet":
        path = folder / "papers.parquet"
        pq.write_table(pa.Table.from_pylist([{k: r[k] for k in ("id", *FIELDS, "abstract")}
                                             for r in records]), path, row_group_size=97)
        return path
    text = "".join(json.dumps(r) + "\n" for r in records)
    if kind == "gzip":
        path = folder / "papers.jsonl.gz"
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path = folder / "papers.jsonl"
        path.write_text(text)
    return path


def plan_of(path, block_bytes: int = 40_000) -> ReadPlan:
    files = resolve_inputs([str(path)])
    return ReadPlan(build_manifest(files), block_bytes, None,
                    plan_units(files, block_bytes, None, SqlSpec("id")))


def all_rows(plan: ReadPlan) -> tuple[np.ndarray, list[dict]]:
    keys, records = [], []
    for unit in plan.units:
        for position, record in read_unit(unit, ("id", *FIELDS)):
            keys.append(make_key(unit.file_index, position))
            records.append(record)
    return np.array(keys, np.int64), records


@pytest.mark.parametrize("kind", ["jsonl", "gzip", "parquet"])
def test_sampled_rows_get_their_own_fields(kind, sample_records, tmp_path):
    records = [dict(r, id=str(r["id"])) for r in sample_records]
    plan = plan_of(write_input(kind, records, tmp_path))
    keys, read = all_rows(plan)
    assert len(keys) == len(records)
    rows = sample_rows(len(keys), 256)               # 64 stretches of 4 rows
    ids = [read[r]["id"] for r in rows]
    found = fields_of(rows, keys[rows], ids, "id", plan, FIELDS)
    assert [f["id"] for f in found] == ids
    assert [f["categories"] for f in found] == [records[r]["categories"] for r in rows]
    assert [f["title"] for f in found] == [records[r]["title"] for r in rows]


def test_a_row_whose_id_changed_gets_no_fields(sample_records, tmp_path):
    records = [dict(r, id=str(r["id"])) for r in sample_records[:200]]
    plan = plan_of(write_input("jsonl", records, tmp_path))
    keys, read = all_rows(plan)
    rows = np.arange(0, 200, 7)
    ids = [read[r]["id"] for r in rows]
    ids[3] = "another paper"
    found = fields_of(rows, keys[rows], ids, "id", plan, FIELDS)
    assert found[3] is None and all(f is not None for i, f in enumerate(found) if i != 3)


def test_an_input_changed_since_the_plan_is_one_line(sample_records, tmp_path, capsys):
    records = [dict(r, id=str(r["id"])) for r in sample_records[:200]]
    path = write_input("jsonl", records, tmp_path)
    plan = plan_of(path)
    keys, read = all_rows(plan)
    path.write_text(path.read_text().replace('"id": "', '"id": "x'))
    rows = np.arange(200)
    found = fields_of(rows, keys, [r["id"] for r in read], "id", plan, FIELDS)
    assert all(f is None for f in found)
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "papers.jsonl" in err
