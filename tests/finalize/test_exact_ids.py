"""An id is the same bytes everywhere: read, deduplicated, stored, compared, exported,
looked up. What cannot be stored exactly is a reject with a reason. (No Ray: the real read
stage and finalizer, tests/sim_run.py.)"""
from __future__ import annotations

import json
import random

import h5py
import numpy as np
import pyarrow as pa
import pytest
import sim_run
from corpus_strategies import GenFile, json_line

from ray_job.errors import UserError
from ray_job.finalize.h5out import VerificationError
from ray_job.read.text import RejectRow, record_id
from ray_job.rundir.rejects import parse_rejects, rejects_text
from ray_job.rundir.rundir import RunDir


@pytest.mark.parametrize("value, row_id", [
    (" 1", " 1"), ("1 ", "1 "), ("\tp1\n", "\tp1\n"), (1, "1"), (-7, "-7"),
    (10**30, "1" + "0" * 30), ("e\u0301", "e\u0301"), ("\u00e9", "\u00e9")])
def test_an_id_is_kept_exactly(value, row_id):
    assert record_id({"id": value}, "id") == row_id


@pytest.mark.parametrize("value, reason", [
    ("p1\x00", "bad_id"), ("\x00", "bad_id"), ("a\x00b", "bad_id"), ("p\ud800", "bad_id"),
    (1.0, "bad_type_id"), (True, "bad_type_id"), ([1], "bad_type_id"), ({}, "bad_type_id"),
    (None, "missing_id"), ("", "missing_id"), ("  \t", "missing_id")])
def test_an_id_that_cannot_be_kept_exactly_is_a_reject_with_a_reason(value, reason):
    with pytest.raises(RejectRow) as caught:
        record_id({"id": value}, "id")
    assert caught.value.reason == reason


def run_sim(tmp_path, rows: list[dict], raw_lines: tuple[bytes, ...] = ()):
    lines = [json_line(r, True) for r in rows] + list(raw_lines)
    (tmp_path / "in").mkdir()
    GenFile("f00", "jsonl", ".jsonl", lines=lines).write(tmp_path / "in")
    units = sim_run.plan(tmp_path / "in", 1 << 20)
    run_dir = RunDir.at(tmp_path / "out")
    sim_run.attempt(run_dir, units, random.Random(0), 4)
    sim_run.finalize_units(run_dir, units)
    with h5py.File(tmp_path / "out" / "embeddings.h5") as h5:
        ids = [i.decode() for i in h5["ids"][:]]
    rejects = {r["key"]: (r["reason"], r.get("id")) for r in run_dir.rejects.records()}
    return ids, rejects


def paper(row_id, n: int) -> dict:
    return {"id": row_id, "title": f"paper {n}", "abstract": f"about topic {n}"}


def test_ids_differing_by_a_nul_or_whitespace_never_collapse(tmp_path):
    """The issue's case: `p1` twice in embeddings.h5, the DuckDB export's primary key
    violated, `similar p1` listing p1 itself, and 1 / "1" / " 1" folded into one id."""
    from ray_job.finalize.exports import export_duckdb
    from ray_job.search.similar import similar

    rows = [paper(i, n) for n, i in enumerate(["p1", "p1\x00", 1, "1", " 1"])]
    ids, rejects = run_sim(tmp_path, rows)
    assert ids == ["p1", "1", " 1"]
    assert sorted(reason for reason, _ in rejects.values()) == ["bad_id", "duplicate_id"]
    assert ("duplicate_id", "1") in rejects.values()
    out = tmp_path / "out"
    export_duckdb(out / "embeddings.h5", RunDir.at(out))            # no primary-key clash
    assert sorted(h.id for h in similar(out, "p1", k=5)) == [" 1", "1"]      # never itself
    assert sorted(h.id for h in similar(out, " 1", k=5)) == ["1", "p1"]
    with pytest.raises(UserError, match="is not in"):
        similar(out, "p1\x00")


def test_a_nul_id_among_ids_over_256_bytes_does_not_crash_finalize(tmp_path):
    """Long ids are stored variable-length (HDF5 strings end at a NUL): the NUL id is a
    bad_id reject; the long one is stored exactly."""
    long_id = "a" * 300
    ids, rejects = run_sim(tmp_path, [paper(long_id, 0), paper("b\x00c", 1)])
    assert ids == [long_id]
    assert [reason for reason, _ in rejects.values()] == ["bad_id"]


@pytest.mark.parametrize("ids", [["a" * 300, "b\x00c"], ["p1", "p1\x00"]])
def test_a_shard_holding_a_nul_id_is_refused_in_one_line(tmp_path, ids):
    """A shard from an older ray-embed: the finalizer names the id instead of crashing in
    h5py or storing `p1` twice."""
    from test_finalize import shard_table

    run_dir = RunDir.at(tmp_path)
    run_dir.shards.write(shard_table(list(range(len(ids))), ids))
    with pytest.raises(VerificationError, match="holds a NUL character"):
        sim_run.finalize(run_dir, sim_run.MergeSpec({}))
    assert not (tmp_path / "embeddings.h5").exists()


def test_the_read_back_proof_compares_exact_bytes():
    """What the duplicate pass compared (Arrow strings) and what h5py gives back (fixed
    width, NUL padding stripped) digest alike only when the bytes are the same."""
    from ray_job.finalize.ids import IdDigest, fixed_width

    def digests(values):
        ids = pa.array(values)
        written, stored = IdDigest(), IdDigest()
        written.add_arrow(ids)
        stored.add_stored(fixed_width(ids, 4))
        return written.hexdigest(), stored.hexdigest()

    same, also = digests(["p1", "abcd", "x"])
    assert same == also
    written, stored = digests(["p1", "p1\x00"])
    assert written != stored
    variable = IdDigest()
    variable.add_stored(np.array([b"p1", b"abcd", b"x"], dtype=object))
    assert variable.hexdigest() == same


def test_json_numbers_beyond_what_the_json_module_takes_are_bad_json(tmp_path):
    """A 5,000-digit integer (ValueError in json.loads) and deep nesting (RecursionError)
    failed the whole read task; now each is its line's reject."""
    raw = (b'{"id": ' + b"1" * 5000 + b', "title": "t", "abstract": "a"}', b"[" * 100_000)
    ids, rejects = run_sim(tmp_path, [paper("p1", 0)], raw)
    assert ids == ["p1"]
    assert sorted(reason for reason, _ in rejects.values()) == ["bad_json", "bad_json"]


def test_rejects_whose_text_holds_line_separators_read_back():
    """U+2028, U+0085 and \\x1c are written raw (ensure_ascii=False); they are not newlines."""
    records = [{"reason": "bad_text", "key": 1, "id": "a\u2028b\x85c\x1cd"},
               {"reason": "x", "key": 2}]
    assert list(parse_rejects(rejects_text(records))) == records


def test_an_index_title_utf8_cannot_encode_is_left_out(tmp_path):
    """A rejected record (lone surrogate in its title) shares its id with an embedded one:
    the titles file was written from it and failed."""
    from ray_job.config import JobConfig
    from ray_job.search.titles import write_titles

    ids, _ = run_sim(tmp_path, [{"id": "p1", "title": "bad \ud800", "abstract": "a"},
                                {"id": "p1", "title": "good", "abstract": "b"}])
    assert ids == ["p1"]
    units = sim_run.plan(tmp_path / "in", 1 << 20)
    config = sim_run.record_of(JobConfig.of(inputs=(str(tmp_path / "in"),)))
    target = tmp_path / "titles.arrow"
    assert not write_titles(tmp_path / "out" / "embeddings.h5", config, target, units)


def test_a_rejects_record_keeps_the_id_it_could_not_store(tmp_path):
    _, rejects = run_sim(tmp_path, [paper("p1\x00", 0), paper("p2", 1)])
    assert list(rejects.values()) == [("bad_id", "p1\x00")]
    text = next((tmp_path / "out" / "rejects").glob("unit-*.jsonl")).read_text()
    assert '"p1\\u0000"' in text and json.loads(text)["id"] == "p1\x00"   # escaped, not raw
