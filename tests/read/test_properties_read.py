"""Property-based: generated corpora (odd ids, odd texts, malformed and mixed files) through
the real planner, readers, resume bookkeeping, finalizer, exports and search lookups,
without Ray (tests/sim_run.py), against the oracle (tests/corpus_oracle.py): the output ids
are exactly the valid distinct ids in key order, every other row is a reject with its
reason, every vector is its own row's, and killed attempts resume to the same result.
A few examples by default; `-m slow` tries hundreds."""
from __future__ import annotations

import contextlib
import json
import random
import tempfile
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import sim_run
from corpus_oracle import expected, expected_titles, text_hash
from corpus_strategies import corpora
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ray_job.rundir.rundir import RunDir

COMMON = dict(deadline=None, database=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@contextlib.contextmanager
def simulated(files, block_bytes: int, seed: int):
    """The corpus written to a temp folder, its plan and an empty run directory."""
    with tempfile.TemporaryDirectory() as tmp:
        inputs, out = Path(tmp) / "in", Path(tmp) / "out"
        inputs.mkdir()
        for f in files:
            f.write(inputs)
        yield SimpleNamespace(inputs=inputs, out=out, exp=expected(files, sim_run.SEP),
                              units=sim_run.plan(inputs, block_bytes), run_dir=RunDir.at(out),
                              rng=random.Random(seed))


def resume_as_the_oracle_says(sim, shard_rows: int) -> bool:
    """One clean attempt and finalize, checked against the oracle; False: nothing to
    finalize (refused, tested elsewhere)."""
    sim_run.attempt(sim.run_dir, sim.units, sim.rng, shard_rows)
    if not sim.exp.kept:
        return False
    result = sim_run.finalize_units(sim.run_dir, sim.units)
    check_output(sim.out, sim.exp)
    assert result.reconciliation["rows_seen"] == sim.exp.rows
    check_rejects(sim.out, sim.exp)
    return True


def check_corpus(files, block_bytes: int, shard_rows: int, kills: list[int], seed: int) -> None:
    with simulated(files, block_bytes, seed) as sim:
        for stop_after in kills:                    # attempts killed part way
            sim_run.attempt(sim.run_dir, sim.units, sim.rng, shard_rows, stop_after)
        if resume_as_the_oracle_says(sim, shard_rows):
            check_readers(sim.out, sim.exp, sim.inputs, sim.units)


def check_output(out: Path, exp) -> None:
    with h5py.File(out / "embeddings.h5") as h5:
        ids = [i.decode("utf-8") for i in h5["ids"][:]]
        vectors, hashes = h5["embeddings"][:], h5["text_hashes"][:]
    assert ids == [r.id for r in exp.kept]
    want = np.array([text_hash(r.text) for r in exp.kept], dtype=np.uint64)
    assert hashes.tolist() == want.tolist()
    np.testing.assert_array_equal(vectors, sim_run.fake_vectors(want))


def check_rejects(out: Path, exp) -> None:
    found = {}
    for path in (out / "rejects").glob("*.jsonl"):
        for line in path.read_text().split("\n")[:-1]:
            record = json.loads(line)
            assert record["key"] not in found, f"key {record['key']} rejected twice"
            found[record["key"]] = record["reason"]
    assert found == exp.rejects


def check_readers(out: Path, exp, inputs: Path, units) -> None:
    """The ids read back exactly by the exports, `similar`'s lookup and the index titles."""
    from ray_job.config import JobConfig
    from ray_job.finalize.exports import h5_chunks
    from ray_job.search.similar import row_of
    from ray_job.search.titles import write_titles

    h5 = out / "embeddings.h5"
    ids = [r.id for r in exp.kept]
    assert [i for t in h5_chunks(h5) for i in t.column("id").to_pylist()] == ids
    for row in random.Random(0).sample(range(len(ids)), min(len(ids), 5)):
        assert row_of(h5, ids[row]) == row
    target = out / "titles.arrow"
    config = sim_run.record_of(JobConfig.of(inputs=(str(inputs),)))
    if write_titles(h5, config, target, units):
        import pyarrow.ipc as ipc

        with ipc.open_file(str(target)) as reader:
            assert reader.read_all().column("title").to_pylist() == expected_titles(exp)


def scenario():
    return st.tuples(corpora(), st.sampled_from([64, 200, 1000, 1 << 20]), st.integers(1, 7),
                     st.lists(st.integers(0, 3), max_size=2), st.integers(0, 2**31))


@settings(max_examples=12, derandomize=True, **COMMON)
@given(scenario())
def test_generated_corpora_read_and_finalize_as_the_oracle_says(case):
    check_corpus(*case)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@settings(max_examples=600, **COMMON)
@given(scenario())
def test_generated_corpora_read_and_finalize_as_the_oracle_says_many(case):
    check_corpus(*case)


def test_the_duckdb_export_holds_exactly_the_output_ids(tmp_path):
    """Ids that differ only by a NUL or by whitespace never meet in the export's primary key."""
    from corpus_strategies import GenFile, json_line

    rows = [{"id": i, "title": "t", "abstract": f"a {n}"}
            for n, i in enumerate(["p1", "p1\x00", 1, "1", " 1", "1 "])]
    files = [GenFile("f00", "jsonl", ".jsonl", lines=[json_line(r, True) for r in rows])]
    (tmp_path / "in").mkdir()
    files[0].write(tmp_path / "in")
    units = sim_run.plan(tmp_path / "in", 1 << 20)
    run_dir = RunDir.at(tmp_path / "out")
    sim_run.attempt(run_dir, units, random.Random(0), 4)
    sim_run.finalize_units(run_dir, units)
    import duckdb

    from ray_job.finalize.exports import export_duckdb

    export_duckdb(tmp_path / "out" / "embeddings.h5", run_dir)
    con = duckdb.connect(str(tmp_path / "out" / "embeddings.duckdb"), read_only=True)
    assert [r[0] for r in con.execute("SELECT id FROM embeddings ORDER BY rowid").fetchall()] == \
        ["p1", "1", " 1", "1 "]
    con.close()
    assert [r.id for r in expected(files, sim_run.SEP).kept] == ["p1", "1", " 1", "1 "]


# storage faults (the injector at the door, tests/faultkit) in generated attempts
FAULT_PATHS = ["*", "*/shards/*", "*/rejects/*", "*/reads/*", "*/in/*", "*/embeddings.h5*"]


def fault_rules():
    from faultkit import StorageFault

    rule = st.builds(StorageFault, op=st.sampled_from(["*", "stat", "list", "read", "open",
                                                        "write", "move", "remove"]),
                     path=st.sampled_from(FAULT_PATHS),
                     fault=st.sampled_from(["error", "enospc", "unreachable"]),
                     after=st.integers(0, 12), times=st.sampled_from([None, 1, 2]))
    # no `probability`: its draws hash the path, and a temp dir's name differs every run
    return st.lists(rule, min_size=1, max_size=2)


def check_faulted_corpus(files, block_bytes: int, shard_rows: int, rules: list,
                         seed: int) -> None:
    """Attempts under a schedule of storage faults end done or in one StorageError (never
    another exception, a reject or a lost row); one clean attempt and finalize then give the
    oracle's output."""
    from faultkit import StorageFaults, injected

    from ray_job.storage.failures import StorageError

    with simulated(files, block_bytes, seed) as sim:
        with injected(StorageFaults(tuple(rules))):
            for _ in range(2):                      # a fault, then perhaps another
                faulted = RunDir.at(sim.out)        # its files keep the plan: made in here
                try:
                    sim_run.attempt(faulted, sim.units, sim.rng, shard_rows)
                    if sim.exp.kept:
                        sim_run.finalize_units(faulted, sim.units)
                    break
                except StorageError:
                    pass
        resume_as_the_oracle_says(sim, shard_rows)


def faulted_scenario():
    return st.tuples(corpora(), st.sampled_from([64, 200, 1000, 1 << 20]), st.integers(1, 7),
                     fault_rules(), st.integers(0, 2**31))


@settings(max_examples=8, derandomize=True, **COMMON)
@given(faulted_scenario())
def test_generated_storage_faults_end_in_a_storage_error_and_resume_as_the_oracle_says(case):
    check_faulted_corpus(*case)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@settings(max_examples=400, **COMMON)
@given(faulted_scenario())
def test_generated_storage_faults_end_in_a_storage_error_and_resume_as_the_oracle_says_many(case):
    check_faulted_corpus(*case)
