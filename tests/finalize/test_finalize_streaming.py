"""The streaming finalizer against the old in-memory one (kept here as the oracle): the same
ids in the same order, the same vectors, text hashes, urls, attributes, duplicates.jsonl and
reconciliation totals, on random shards with unsorted keys, blocks written twice (with other
values: the first source must win), duplicate ids, ids of many lengths and reused rows. The
merge's buffers are made tiny so that every pass spills, merges and buckets for real."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pyarrow as pa
import pytest

from ray_job.encode.encoder import embedding_array
from ray_job.finalize import dedupe, key_order, kway
from ray_job.finalize.ids import fixed_width, partition_hash
from ray_job.finalize.merge import MergeSpec, VerificationError, finalize, row_sources
from ray_job.finalize.reconcile import reconcile
from ray_job.read.inputs import ReadUnit
from ray_job.read.keys import make_key
from ray_job.read.previous import previous_embeddings
from ray_job.rundir.reuse import reuse_table
from ray_job.rundir.rundir import RunDir

DIM = 5
TEMPLATE = "https://arxiv.org/abs/{id}"


# ---- the oracle: the finalizer as it was before the streaming merge -------------------------

def old_merge(run_dir: RunDir, previous_h5: str | None, units: list | None):
    sources = row_sources(run_dir, previous_h5)
    keys, ids, hashes, offsets = [], [], [], [0]
    for source in sources:
        t = source.index_table()
        keys.append(t.column("key").to_numpy())
        ids.append(np.array([s.encode() for s in t.column("id").to_pylist()], dtype=object))
        hashes.append(t.column("text_hash").to_numpy())
        offsets.append(offsets[-1] + t.num_rows)
    keys, hashes = np.concatenate(keys), np.concatenate(hashes)
    ids = np.concatenate(ids)
    ids = ids.astype(f"S{max(len(s) for s in ids)}")
    order = np.argsort(keys, kind="stable")
    first = np.ones(len(order), bool)
    first[1:] = keys[order][1:] != keys[order][:-1]
    order = order[first]
    _, firsts = np.unique(ids[order], return_index=True)
    keep = np.zeros(len(order), bool)
    keep[firsts] = True
    rows, dup_rows = order[keep], order[~keep]
    emb = np.zeros((len(rows), DIM), np.float32)
    position = np.full(len(keys), -1)
    position[rows] = np.arange(len(rows))
    for s, source in enumerate(sources):
        mine = np.arange(offsets[s], offsets[s + 1])
        pos = position[mine]
        if (pos >= 0).any():
            if hasattr(source, "previous_h5"):
                prev = run_dir.reads.read_reuse(source.name).column("previous_row").to_numpy()
                all_emb = previous_embeddings(previous_h5, prev)
            else:
                all_emb = run_dir.shards.embeddings(source.name)[0]
            emb[pos[pos >= 0]] = all_emb[(mine - offsets[s])[pos >= 0]]
    dups = [{"reason": "duplicate_id", "detail": "an earlier row (lower key) has this id",
             "key": int(keys[r]), "id": ids[r].decode()} for r in np.sort(dup_rows)]
    totals = None
    if units is not None:
        totals = reconcile(units, keys[rows], keys[dup_rows], run_dir.reads.units(),
                           run_dir.rejects.unit_counts(), run_dir.rejects.row_keys())
    return ids[rows], hashes[rows], emb, dups, totals, keys[rows], keys[dup_rows]


# ---- random runs -------------------------------------------------------------------------------

def shard(keys, ids, rng, offset=0.0, dim=DIM):
    keys = np.asarray(keys, np.int64)
    emb = rng.standard_normal((len(keys), dim)).astype(np.float32) + offset
    return pa.table({"key": keys, "id": pa.array(ids, pa.string()),
                     "embedding": embedding_array(emb),
                     "text_hash": pa.array((keys * 31 + 7).astype(np.uint64)),
                     "n_tokens": np.full(len(keys), 3, np.int32),
                     "n_computed": np.full(len(keys), 4, np.int32)})


def random_run(tmp_path, seed: int, reuse: bool):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(150, 400))
    files = rng.integers(0, 3, n)
    keys = np.array(sorted({make_key(int(f), int(p)) for f, p in
                            zip(files, rng.integers(0, 5000, n), strict=True)}), np.int64)
    pool = [f"{i:04d}.{i * 7 % 1000:05d}" + "é" * (i % 3) + "x" * (i % 17)
            for i in range(len(keys))]
    ids = [pool[i] if rng.random() > 0.15 else pool[int(rng.integers(0, len(pool)))]
           for i in range(len(keys))]
    run_dir = RunDir.at(tmp_path / "run")
    reused = rng.random(len(keys)) < (0.3 if reuse else 0)
    encoded = np.flatnonzero(~reused)
    cuts = np.sort(rng.choice(np.arange(1, len(encoded)), size=len(encoded) // 20, replace=False))
    for block in np.split(rng.permutation(encoded) if seed % 2 else encoded, cuts):
        if not len(block):
            continue
        block = rng.permutation(block)                                 # unsorted within a shard
        run_dir.shards.write(shard(keys[block], [ids[i] for i in block], rng))
        if rng.random() < 0.2:                                         # written twice, other values
            again = block[: max(1, len(block) // 2)]
            run_dir.shards.write(shard(keys[again], [ids[i] for i in again], rng, offset=100.0))
    previous = None
    if reuse:
        # an old embeddings.h5 holding, at rows in another order, the id and text of every
        # row a reuse list names (finalize checks that each reused row is that paper's)
        previous = tmp_path / "previous.h5"
        parts = np.array_split(np.flatnonzero(reused), 3)
        parts[2] = np.r_[parts[2], rng.choice(encoded, 2)]            # also in shards: dup keys
        listed = np.concatenate(parts)
        n_old = len(listed) + 20
        at = rng.permutation(n_old)[:len(listed)]                     # each one's row there
        old_ids = [f"gone{i}" for i in range(n_old)]
        old_hashes = np.arange(n_old, dtype=np.uint64)
        for j, i in enumerate(listed):
            old_ids[at[j]], old_hashes[at[j]] = ids[i], np.uint64(keys[i] * 31 + 7)
        with h5py.File(previous, "w") as h5:
            h5["ids"] = np.array([i.encode() for i in old_ids])
            h5["text_hashes"] = old_hashes
            h5["embeddings"] = rng.standard_normal((n_old, DIM)).astype(np.float32)
        start = 0
        for u, part in enumerate(parts):
            run_dir.reads.write_reuse(f"r{u}", reuse_table({
                "key": keys[part], "id": [ids[i] for i in part],
                "text_hash": (keys[part] * 31 + 7).astype(np.uint64),
                "previous_row": at[start:start + len(part)]}), {"reused": len(part)})
            start += len(part)
    units = [ReadUnit(f, f"/in{f}.jsonl", "jsonl", None, 0, None) for f in range(3)]
    return run_dir, (str(previous) if previous else None), units


@pytest.fixture
def tiny_buffers(monkeypatch):
    monkeypatch.setattr(kway, "RUN_ROWS", 37)
    monkeypatch.setattr(kway, "BATCH_ROWS", 11)
    monkeypatch.setattr(key_order, "CHUNK_ROWS", 23)
    monkeypatch.setattr(dedupe, "BUCKET_ROWS", 29)


@pytest.mark.parametrize("seed", range(6))
def test_the_streaming_merge_writes_what_the_old_merge_wrote(tmp_path, tiny_buffers, seed):
    run_dir, previous, units = random_run(tmp_path, seed, reuse=seed >= 3)
    ids, hashes, emb, dups, _, kept_keys, dup_keys = old_merge(run_dir, previous, None)
    copies = sum(s.index_table().num_rows for s in row_sources(run_dir, previous))
    assert dups and copies > len(ids) + len(dups)      # duplicate ids and keys written twice
    for u in units:                    # what the read stage would have seen: all adds up
        lo, hi = make_key(u.file_index, 0), make_key(u.file_index + 1, 0)
        seen = int(((kept_keys >= lo) & (kept_keys < hi)).sum()
                   + ((dup_keys >= lo) & (dup_keys < hi)).sum())
        bad = [{"reason": "bad_json", "detail": "x", "key": lo + i, "source": "s"}
               for i in range(u.file_index)]
        run_dir.rejects.write_unit(u.name, bad)
        run_dir.reads.write_unit(u.name, {"seen": seen + len(bad)})
    totals = old_merge(run_dir, previous, units)[4]
    attrs = {"model": "m", "precision": "auto", "dims": [1, 2]}
    result = finalize(run_dir, MergeSpec(attrs, TEMPLATE, previous_h5=previous, units=units))
    with h5py.File(run_dir.results.local("embeddings.h5")) as h5:
        assert h5["ids"].dtype == ids.dtype and h5["ids"][:].tolist() == ids.tolist()
        assert h5["text_hashes"][:].tolist() == hashes.tolist()
        assert np.array_equal(h5["embeddings"][:], emb)
        urls = [TEMPLATE.format(id=i.decode()).encode() for i in ids]
        assert (h5["urls"][:].tolist() == urls
                and h5["urls"].dtype.itemsize == ids.dtype.itemsize + 22)
        assert dict(h5.attrs) == {"model": "m", "precision": "unknown", "dims": "[1, 2]",
                                  "devices": "", "count": len(ids), "dim": DIM}
    dup_file = run_dir.store.local_path / "rejects" / "duplicates.jsonl"
    found = ([json.loads(line) for line in dup_file.read_text().splitlines()]
             if dup_file.exists() else [])
    assert found == dups
    assert (result.count, result.duplicates, result.reconciliation) == (len(ids), len(dups), totals)
    assert result.rejected_by_reason == run_dir.rejects.counts() == {"bad_json": 3,
                                                                   "duplicate_id": len(dups)}
    assert result.real_tokens == 3 * sum(t.num_rows for t in _shard_tables(run_dir))


def _shard_tables(run_dir):
    return [run_dir.shards.read(n, ["key"]) for n in run_dir.shards.names()]


def test_a_very_long_id_makes_the_id_column_variable_length_not_every_row_wide(tmp_path):
    rng = np.random.default_rng(0)
    long_id = "p" * 10_000
    run_dir = RunDir.at(tmp_path)
    run_dir.shards.write(shard([1, 2, 3], ["a", long_id, "b"], rng))
    finalize(run_dir, MergeSpec({}, TEMPLATE))
    with h5py.File(tmp_path / "embeddings.h5") as h5:
        assert h5["ids"].dtype.kind == "O" and h5["urls"].dtype.kind == "O"
        assert h5["ids"][:].tolist() == [b"a", long_id.encode(), b"b"]
        assert h5["urls"][1] == TEMPLATE.format(id=long_id).encode()
    from ray_job.finalize.exports import h5_chunks

    assert next(h5_chunks(tmp_path / "embeddings.h5")).column("id").to_pylist() == [
        "a", long_id, "b"]


def test_ids_at_the_limit_stay_fixed_width_and_a_stale_duplicates_file_goes(tmp_path):
    rng = np.random.default_rng(0)
    run_dir = RunDir.at(tmp_path)
    run_dir.shards.write(shard([1, 2], ["a", "q" * 256], rng))
    run_dir.rejects.write_duplicates([{"reason": "duplicate_id", "key": 9, "id": "z"}])
    result = finalize(run_dir, MergeSpec({}))
    with h5py.File(tmp_path / "embeddings.h5") as h5:
        assert h5["ids"].dtype == np.dtype("S256")
    assert not (tmp_path / "rejects" / "duplicates.jsonl").exists()
    assert result.rejected_by_reason == {} and result.duplicates == 0


def test_the_k_way_merge_orders_any_runs_like_one_sort(tmp_path, monkeypatch):
    monkeypatch.setattr(kway, "BATCH_ROWS", 7)
    rng = np.random.default_rng(1)
    writer = kway.RunWriter(tmp_path, "t", ("key", "seq"), run_rows=50)
    keys = rng.integers(0, 40, 500)
    seq = rng.permutation(500)
    for lo in range(0, 500, 30):
        writer.add(pa.table({"key": keys[lo:lo + 30], "seq": seq[lo:lo + 30]}))
    out = pa.concat_tables(kway.merge_runs(writer.finish(), ("key", "seq")))
    order = np.lexsort([seq, keys])
    assert out.column("key").to_pylist() == keys[order].tolist()
    assert out.column("seq").to_pylist() == seq[order].tolist()


def test_ids_become_fixed_width_bytes_and_equal_ids_hash_equal():
    ids = pa.array(["a", "", "é" * 40, "x" * 70, "x" * 70 + "y", "x" * 70]).slice(1)
    assert fixed_width(ids, 8).tolist() == [s.encode()[:8] for s in ids.to_pylist()]
    h = partition_hash(ids)
    assert h[2] == h[4] and len(set(h.tolist())) == 4


def test_shards_of_different_dimensions_are_refused_by_name(tmp_path):
    rng = np.random.default_rng(0)
    run_dir = RunDir.at(tmp_path)
    run_dir.shards.write(shard([1, 2], ["a", "b"], rng))
    name = run_dir.shards.write(shard([3], ["c"], rng, dim=DIM + 1))
    with pytest.raises(VerificationError,
                       match=f"{name} holds 6-dimensional embeddings, other sources 5"):
        finalize(run_dir, MergeSpec({}))
