"""Format by extension (a .jsonl is lines whatever its first line holds) and a damaged
Parquet row group (its rows rejected, counted from the metadata, the rest embedded). The
real planner, read stage and finalizer without Ray (tests/sim_run.py)."""
from __future__ import annotations

import gzip
import io
import json
import random

import h5py
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sim_run

from ray_job.rundir.rundir import RunDir


def embed(tmp_path, name: str, data: bytes, block_bytes: int = 1 << 20):
    """Write one input file, read, 'encode' and finalize it; (ids, rejects by key, result)."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / name).write_bytes(data)
    units = sim_run.plan(tmp_path / "in", block_bytes)
    run_dir = RunDir.at(tmp_path / "out")
    sim_run.attempt(run_dir, units, random.Random(0), 8)
    result = sim_run.finalize_units(run_dir, units)
    with h5py.File(tmp_path / "out" / "embeddings.h5") as h5:
        ids = [i.decode() for i in h5["ids"][:]]
    rejects = {r["key"]: r for r in run_dir.rejects.records()}
    return ids, rejects, result


def records(n: int) -> list[dict]:
    return [{"id": f"p{i}", "title": f"title {i}", "abstract": f"abstract {i}"} for i in range(n)]


@pytest.mark.parametrize("name, pack", [("a.jsonl", bytes), ("a.ndjson", bytes),
                                        ("a.jsonl.gz", lambda d: gzip.compress(d, mtime=0))])
def test_a_jsonl_file_whose_first_line_is_an_array_is_still_lines(tmp_path, name, pack):
    """Was read as one JSON array: one bad_json reject and 0 of its 21 rows embedded."""
    data = b"[1, 2]\n" + b"".join(json.dumps(r).encode() + b"\n" for r in records(20))
    ids, rejects, result = embed(tmp_path, name, pack(data))
    assert ids == [f"p{i}" for i in range(20)]
    assert [(r["key"], r["reason"]) for r in rejects.values()] == [(0, "not_an_object")]
    assert result.reconciliation["rows_seen"] == 21


def test_a_json_file_may_still_hold_one_array(tmp_path):
    ids, rejects, _ = embed(tmp_path, "a.json", json.dumps(records(5) + [7]).encode())
    assert ids == [f"p{i}" for i in range(5)]
    assert [(r["key"], r["reason"]) for r in rejects.values()] == [(5, "not_an_object")]


def parquet_bytes(rows: list[dict], group_rows: int, **options) -> bytearray:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink, row_group_size=group_rows, **options)
    return bytearray(sink.getvalue())


def test_a_damaged_parquet_row_group_rejects_its_rows_and_the_rest_is_embedded(tmp_path):
    """Was: the read task failed and with it the whole run."""
    data = parquet_bytes(records(15), 3)
    group = pq.ParquetFile(io.BytesIO(bytes(data))).metadata.row_group(2)
    for c in range(group.num_columns):                  # its page headers broken
        start = group.column(c).data_page_offset
        data[start:start + 8] = b"\xff" * 8
    ids, rejects, result = embed(tmp_path, "a.parquet", bytes(data))
    assert ids == [f"p{i}" for i in range(15) if not 6 <= i < 9]
    assert sorted(rejects) == [6, 7, 8]                 # one reject per row, its own key
    assert {r["reason"] for r in rejects.values()} == {"damaged_row_group"}
    assert "row group 2 of " in rejects[6]["detail"]
    assert result.reconciliation["rows_seen"] == 15     # counted from the metadata


def test_a_flipped_byte_in_a_checksummed_parquet_page_is_found_not_embedded(tmp_path):
    """A file written with page checksums: the corrupt value would be decoded silently
    ('title X'); verified, its row group is rejected."""
    data = parquet_bytes(records(9), 3, compression="none", use_dictionary=False,
                         write_page_checksum=True)
    at = data.index(b"title 4")
    data[at + 6] = ord("X")
    ids, rejects, _ = embed(tmp_path, "a.parquet", bytes(data))
    assert ids == ["p0", "p1", "p2", "p6", "p7", "p8"]
    assert sorted(rejects) == [3, 4, 5]
