"""Resume state without a per-row array in the driver, and --previous classified in one numpy
pass: pure functions, RunDir on a temp dir, no Ray."""
from __future__ import annotations

import json
from dataclasses import replace

import h5py
import numpy as np
import pyarrow as pa
import pytest

from ray_job.encode.encoder import embedding_array
from ray_job.read.inputs import ReadUnit
from ray_job.read.keys import make_key
from ray_job.read.previous import ID_HASHES, Previous, id_hashes, load_previous, text_hash
from ray_job.read.resume import (
    is_finished,
    resume_fields,
    scan_shards,
    unit_done_keys,
    units_of_keys,
    units_to_read,
)
from ray_job.read.sources import ROW_SCHEMA, UnitRows, rows_from_unit, stream_unit_rows
from ray_job.read.text import TextTemplate
from ray_job.rundir.job import COMPAT_ATTRS
from ray_job.rundir.rundir import RunDir

TEMPLATE = TextTemplate("{title}{sep}{abstract}")


def unit(start, end, file_index=0, path="/in.jsonl"):
    return ReadUnit(file_index, path, "jsonl", None, start, end)


def shard(keys):
    keys = np.asarray(keys, dtype=np.int64)
    return pa.table({"key": keys, "id": [str(k) for k in keys],
                     "embedding": embedding_array(np.ones((len(keys), 2), np.float32)),
                     "text_hash": pa.array(keys.astype(np.uint64), pa.uint64())})


# ---- shards grouped by unit ----------------------------------------------------------------

def test_shards_are_grouped_by_the_units_whose_keys_they_hold():
    units = [unit(0, 100), unit(100, 200), unit(200, 300), unit(0, None, file_index=1)]
    k = make_key
    state = scan_shards(units, [
        ("a", np.array([k(0, 5), k(0, 6)])),                   # inside one unit
        ("b", np.array([k(0, 250), k(0, 7)])),                 # units 0 and 2, not 1
        ("c", np.array([k(1, 0), k(1, 10**9), k(0, 300)])),    # unit 3; k(0, 300): no unit
    ])
    assert state.shards == [["a", "b"], [], ["b"], ["c"]]
    assert state.shard_rows.tolist() == [3, 0, 1, 2] and state.outside == 1
    # the plan's order need not be key order
    shuffled = scan_shards(units[::-1], [("b", np.array([k(0, 250), k(0, 7)]))])
    assert shuffled.shards == [[], ["b"], [], ["b"]]


def test_a_key_in_two_shards_never_makes_a_unit_look_finished():
    """A block written twice with other rows (a retried task on a block cut otherwise) puts a
    key in two shards: the rows then add up to what the unit saw while one is missing, and
    the unit must be read again (found by the generated-corpus test: a row lost for good)."""
    u = unit(0, 100)
    k = make_key
    record = {"seen": 4, **resume_fields(u, rejected=0, reused=0, previous=None)}
    twice = scan_shards([u], [("a", np.array([k(0, 0)])), ("b", np.array([k(0, 0), k(0, 10)])),
                              ("c", np.array([k(0, 20)]))])
    assert twice.shard_rows.tolist() == [4] and twice.overlapping.tolist() == [True]
    assert not twice.finished({u.name: record}, None)[0]       # k(0, 30) is still to read
    apart = scan_shards([u], [("a", np.array([k(0, 0), k(0, 10)])),
                              ("b", np.array([k(0, 20), k(0, 30)]))])
    assert apart.overlapping.tolist() == [False] and apart.finished({u.name: record}, None)[0]


def test_units_of_keys_is_minus_one_between_and_outside_ranges():
    lo, hi = np.array([10, 20]), np.array([15, 30])
    assert units_of_keys(np.array([0, 10, 14, 15, 19, 20, 29, 30]), lo, hi).tolist() == \
        [-1, 0, 0, -1, -1, 1, 1, -1]


def test_a_unit_builds_its_done_keys_from_its_shards_only_its_own_range():
    u = unit(100, 200)
    keys = unit_done_keys(u, [np.array([make_key(0, 5), make_key(0, 150)]),
                              np.array([make_key(0, 199), make_key(0, 200)])])
    assert keys == {make_key(0, 150), make_key(0, 199)}


def test_a_unit_is_finished_only_when_its_own_record_accounts_for_every_row():
    u = unit(0, 100)
    record = {"seen": 10, **resume_fields(u, rejected=2, reused=3, previous="p1")}
    assert is_finished(u, record, 5, "p1")
    assert not is_finished(u, record, 4, "p1")                 # a row is missing: read again
    assert not is_finished(u, record, 5, None)                 # another --previous
    assert not is_finished(u, None, 5, "p1")                   # never read to the end
    assert not is_finished(u, {"seen": 10}, 8, None)           # record of an older version
    # a larger --limit re-cuts the last unit under the same name: its old record is not its own
    longer = replace(u, end=150)
    assert longer.name == u.name and not is_finished(longer, record, 5, "p1")
    assert not is_finished(replace(u, max_rows=7), record, 5, "p1")


def test_the_driver_skips_finished_units_and_quarantines_bad_shards_first(tmp_path):
    run_dir = RunDir.at(tmp_path)
    units = [unit(0, 100), unit(100, 200), unit(200, 300)]
    k = make_key
    run_dir.shards.write(shard([k(0, 1), k(0, 2), k(0, 150)]))
    spanning = run_dir.shards.write(shard([k(0, 160), k(0, 250)]))
    bad = run_dir.shards.write(shard([k(0, 260)]))
    (tmp_path / "shards" / bad).write_bytes(b"not arrow")
    for u, seen, rejected in ((units[0], 4, 1), (units[1], 2, 0), (units[2], 2, 0)):
        run_dir.reads.write_unit(u.name, {"seen": seen, **resume_fields(u, rejected, 0, None)})
    # unit 0: 4 seen, 2 in shards + 1 rejected (one row lost with a killed attempt); unit 1:
    # 2 seen, 2 in shards (finished); unit 2: its second row was in the shard that does not parse
    seen = []
    todo, shards = units_to_read(run_dir, units, None, seen.append)
    assert [e.name for e in seen] == [bad]
    assert todo == [units[0], units[2]] and shards == [[run_dir.shards.names()[0]], [spanning]]
    assert bad not in run_dir.shards.names() and run_dir.shards.corrupt_count() == 1


# ---- rows of a unit: done keys and --previous ----------------------------------------------

def records(n, changed=(), prefix="p"):
    return [{"id": f"{prefix}{i}", "title": f"title {i}",
             "abstract": f"abstract {i}" + (" revised" if i in changed else "")}
            for i in range(n)]


def write_unit(tmp_path, recs):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs) + "not json\n")
    return ReadUnit(0, str(path), "jsonl", None, 0, None)


def make_previous(tmp_path, recs, name="old.h5", id_hash_data=None):
    """An embeddings.h5 of `recs` as finalize writes one (ids, text hashes, the attrs)."""
    texts = [TEMPLATE.render(r) for r in recs]
    path = tmp_path / name
    attrs = {k: "x" for k in COMPAT_ATTRS}
    with h5py.File(path, "w") as h5:
        h5.create_dataset("ids", data=[r["id"].encode() for r in recs], dtype=h5py.string_dtype())
        h5["text_hashes"] = np.array([text_hash(t) for t in texts], np.uint64)
        h5["embeddings"] = np.zeros((len(recs), 2), np.float32)
        if id_hash_data is not None:
            h5[ID_HASHES] = id_hash_data
        h5.attrs.update(attrs)
        h5.attrs["count"] = len(recs)
    return str(path), attrs


def per_row_oracle(u, previous, done):
    """The classification as it was: one Previous.classify call per row, in row order."""
    everything = rows_from_unit(u, TEMPLATE, "id")
    counts, reused, encode = {"reused": 0, "new": 0, "changed": 0}, [], []
    for key, row_id, t_hash in zip(*(everything.table.column(c).to_pylist()
                                     for c in ("key", "id", "text_hash")), strict=True):
        status, old_row = previous.classify(row_id, t_hash)
        counts[status] += 1
        if status == "reused":
            reused.append((key, row_id, t_hash, old_row))
        elif key not in done:
            encode.append(key)
    return counts, reused, encode


@pytest.mark.parametrize("stored_id_hashes", [False, True])
def test_previous_classified_in_one_pass_equals_the_per_row_classification(tmp_path,
                                                                          stored_id_hashes):
    old = records(40)[5:] + [{"id": "gone", "title": "t", "abstract": "a"}]
    new = records(45, changed={7, 8, 30})                      # 0-4 and 40-44 new
    hashes = id_hashes([r["id"] for r in old]) if stored_id_hashes else None
    path, attrs = make_previous(tmp_path, old, id_hash_data=hashes)
    previous = load_previous(path, attrs)
    u = write_unit(tmp_path, new)
    everything = rows_from_unit(u, TEMPLATE, "id").table.column("key").to_pylist()
    for done in (set(), set(everything[::3])):
        rows = rows_from_unit(u, TEMPLATE, "id", done, previous)
        counts, reused, encode = per_row_oracle(u, previous, done)
        assert rows.counts == counts == {"reused": 32, "new": 10, "changed": 3}
        assert list(zip(*(rows.reused[c] for c in ("key", "id", "text_hash", "previous_row")),
                        strict=True)) == reused
        assert rows.table.column("key").to_pylist() == encode
        assert len(rows.rejects) == 1 and rows.seen == 46
        chunked = UnitRows(ROW_SCHEMA.empty_table(), [])               # classified per chunk
        tables = list(stream_unit_rows(chunked, u, TEMPLATE, "id", done, previous, chunk_chars=60))
        assert len(tables) > 3 and all(t.num_rows for t in tables)
        assert pa.concat_tables(tables).equals(rows.table)
        assert (chunked.counts, chunked.reused) == (rows.counts, rows.reused)


def test_classify_many_equals_classify_with_collisions_and_empty_lookups():
    rng = np.random.default_rng(0)
    ids = [f"id{i}" for i in range(200)]
    hashes = id_hashes(ids)
    hashes[7] = hashes[8]                                      # a collision in the old file
    t = rng.integers(0, 2**63, 200, dtype=np.int64).astype(np.uint64)
    order = np.argsort(hashes, kind="stable")
    previous = Previous("x.h5", hashes[order], t[order], order.astype(np.int64), 200)
    query_ids = ids[::2] + ["new1", "new2"]
    query_t = np.concatenate([t[::2], t[:2]])
    query_t[5] += np.uint64(1)                                 # changed
    status, old_row = previous.classify_many(id_hashes(query_ids), query_t)
    names = ("new", "changed", "reused")
    expected = [previous.classify(i, int(h)) for i, h in zip(query_ids, query_t, strict=True)]
    assert [(names[s], r)
            for s, r in zip(status.tolist(), old_row.tolist(), strict=True)] == expected
    empty = Previous("x.h5", np.empty(0, np.uint64), np.empty(0, np.uint64),
                     np.empty(0, np.int64), 0)
    status, old_row = empty.classify_many(id_hashes(["a"]), np.array([1], np.uint64))
    assert status.tolist() == [0] and old_row.tolist() == [-1]


def test_id_hashes_equal_text_hash_for_str_bytes_and_fixed_width_arrays():
    ids = ["2101.00001", "math/0601001", "é-ünïcode", "", "x\udcff"]
    expected = [text_hash(i) for i in ids]
    assert id_hashes(ids).tolist() == expected
    assert id_hashes(ids, chunk=2).tolist() == expected             # chunk boundaries
    assert id_hashes(np.array(ids[:4], dtype=object)).tolist() == expected[:4]
    utf8 = [i.encode() for i in ids[:4]]
    assert id_hashes(utf8).tolist() == expected[:4]
    assert id_hashes(np.array(utf8)).tolist() == expected[:4]          # numpy "S" array
    assert id_hashes([]).dtype == np.uint64 and len(id_hashes([])) == 0


def test_a_stored_id_hashes_dataset_is_used_only_when_it_matches_the_ids(tmp_path):
    recs = records(100)
    right = id_hashes([r["id"] for r in recs])
    plain = load_previous(*make_previous(tmp_path, recs, "plain.h5"))
    cached = load_previous(*make_previous(tmp_path, recs, "cached.h5", right))
    stale = right.copy()
    stale[0] += np.uint64(1)                                   # row 0 is always in the sample
    wrong = load_previous(*make_previous(tmp_path, recs, "stale.h5", stale))
    for p in (cached, wrong):
        assert np.array_equal(p.id_hash, plain.id_hash) and np.array_equal(p.row, plain.row)
        assert p.fingerprint == plain.fingerprint != ""
    other = load_previous(*make_previous(tmp_path, records(100, changed={3}), "other.h5"))
    assert other.fingerprint != plain.fingerprint


# ---- end to end: a resume reads only the units a killed attempt left unfinished -------------

@pytest.mark.slow        # two runs; the driver's side is test_the_driver_skips_finished_units...
def test_a_resume_reads_again_only_the_units_whose_rows_are_not_all_in_shards(
        local_ray, sample_path, tmp_path):
    from ray_job.config import JobConfig
    from ray_job.pipeline import run

    out = tmp_path / "o"
    cfg = JobConfig.of(inputs=(str(sample_path),), output=str(out), limit=60, shard_rows=16,
                       block_bytes=16_000, precision="fp32")
    first = run(cfg)
    with h5py.File(out / "embeddings.h5") as h5:
        ids = h5["ids"][:].tolist()
    run_dir = RunDir.at(out)
    reads = {p.name: p.stat().st_mtime_ns for p in (out / "reads").glob("unit-*.json")}
    lost = run_dir.shards.names()[1]                          # as if its attempt was killed
    lost_keys = run_dir.shards.read(lost, ["key"]).column("key").to_numpy()
    (out / "shards" / lost).unlink()
    again = run(cfg)
    reread = {n for n, t in reads.items() if (out / "reads" / n).stat().st_mtime_ns != t}
    from ray_job.read.plan import ReadPlan
    units = ReadPlan.from_dict(run_dir.load_plan()).units
    holding = {f"unit-{u.name}.json" for u, rows in
               zip(units, scan_shards(units, [(lost, lost_keys)]).shard_rows, strict=True) if rows}
    assert reread == holding and 0 < len(holding) < len(reads)
    assert again["rows_embedded_this_run"] == len(lost_keys)
    assert again["rows_embedded"] == first["rows_embedded"] == 60
    assert again["reconciliation"]["rows_seen"] == 60
    with h5py.File(out / "embeddings.h5") as h5:
        assert h5["ids"][:].tolist() == ids


def test_the_resume_state_benchmark_runs_and_prints_its_numbers():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "resume_state.py"
    out = subprocess.run([sys.executable, str(script), "--shards", "12", "--keys", "500",
                          "--unit-keys", "1000", "--previous-rows", "3000", "--classify-rows",
                          "500"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "resume: 12 shards x 500 keys = 6,000 keys, 6 units (2 unfinished)" in out.stdout
    assert "'units_to_read': 2" in out.stdout and "'keys': 6000" in out.stdout
    assert "load_previous  before" in out.stdout and "classify 500 rows" in out.stdout
