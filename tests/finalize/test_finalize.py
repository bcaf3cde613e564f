import json

import h5py
import numpy as np
import pyarrow as pa
import pytest
from conftest import shard_files

from ray_job.encode.encoder import embedding_array
from ray_job.finalize.merge import MergeSpec, VerificationError, finalize
from ray_job.rundir.rundir import RunDir
from ray_job.rundir.shards import CorruptShard


def shard_table(keys, ids, dim=4, value=None):
    keys = np.asarray(keys, dtype=np.int64)
    emb = np.stack([np.full(dim, k if value is None else value, dtype=np.float32) for k in keys])
    return pa.table({"key": keys, "id": ids, "embedding": embedding_array(emb),
                     "text_hash": pa.array(keys.astype(np.uint64) * 7, pa.uint64()),
                     "n_tokens": np.full(len(keys), 10, np.int32),
                     "n_computed": np.full(len(keys), 11, np.int32)})


def make_run(tmp_path, tables):
    run_dir = RunDir.at(tmp_path)
    for t in tables:
        run_dir.shards.write(t)
    return tmp_path


def merge(run, attrs=None, url_template=None, normalized=False):
    return finalize(RunDir.at(run), MergeSpec(attrs or {}, url_template, normalized))


def test_shards_interleaved_in_key_space_merge_in_key_order(tmp_path):
    run = make_run(tmp_path, [shard_table([5, 1, 9], ["e", "a", "i"]),
                              shard_table([2, 7], ["b", "g"]), shard_table([3], ["c"])])
    result = merge(run, {"model": "m"}, "https://arxiv.org/pdf/{id}.pdf")
    with h5py.File(run / "embeddings.h5") as h5:
        assert h5["ids"][:].tolist() == [b"a", b"b", b"c", b"e", b"g", b"i"]
        assert h5["embeddings"][:, 0].tolist() == [1, 2, 3, 5, 7, 9]
        assert h5["urls"][0] == b"https://arxiv.org/pdf/a.pdf"
        assert h5["text_hashes"][:].tolist() == [7, 14, 21, 35, 49, 63]
        assert h5.attrs["count"] == 6 and h5.attrs["model"] == "m" and h5.attrs["dim"] == 4
    assert (result.count, result.real_tokens, result.computed_tokens) == (6, 60, 66)
    assert not list(run.glob(".*tmp"))


def test_a_block_written_twice_counts_once_and_duplicate_ids_keep_the_first(tmp_path):
    run = make_run(tmp_path, [shard_table([1, 2], ["a", "b"]),
                              shard_table([1, 2, 3], ["a", "b", "c"]),
                              shard_table([4], ["a"])])
    result = merge(run)
    with h5py.File(run / "embeddings.h5") as h5:
        assert h5["ids"][:].tolist() == [b"a", b"b", b"c"]
        assert "urls" not in h5
    dup = [json.loads(line)
           for line in (run / "rejects" / "duplicates.jsonl").read_text().splitlines()]
    assert dup == [{"reason": "duplicate_id", "detail": dup[0]["detail"], "key": 4, "id": "a"}]
    assert result.duplicates == 1


def test_non_finite_or_unnormalised_rows_fail_verification_naming_the_shard(tmp_path):
    bad = shard_table([1, 2], ["a", "b"])
    emb = np.array([[1, 0, 0, 0], [np.nan, 0, 0, 0]], dtype=np.float32)
    bad = bad.set_column(2, "embedding", embedding_array(emb))
    run = make_run(tmp_path, [bad])
    with pytest.raises(VerificationError, match=r"non-finite embedding for id 'b' in shard part-"):
        merge(run)
    assert not (run / "embeddings.h5").exists()
    shard_files(run / "shards")[0].unlink()
    RunDir.at(run).shards.write(shard_table([1], ["a"], value=2.0))
    with pytest.raises(VerificationError, match="norm 4.0000"):
        merge(run, normalized=True)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_shard_is_named_refused_and_moved_aside_for_recomputation(tmp_path, damage):
    run = make_run(tmp_path, [shard_table([1, 2], ["a", "b"]), shard_table([3], ["c"])])
    path = shard_files(run / "shards")[0]
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[:100]
    else:  # flip bits inside the embedding values: the file still parses
        at = data.find(np.float32(1.0).tobytes())
        data[at:at + 4] = np.float32(1.5).tobytes()
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptShard, match=path.name + ".*moved to shards/corrupt/"):
        merge(run)
    assert (run / "shards" / "corrupt" / path.name).exists()
    assert RunDir.at(run).shards.done_keys().tolist() == [3]       # its rows count as not done


def test_shard_names_are_deterministic_so_retries_overwrite(tmp_path):
    run_dir = RunDir.at(tmp_path)
    a = run_dir.shards.write(shard_table([3, 4], ["c", "d"]))
    b = run_dir.shards.write(shard_table([3, 4], ["c", "d"]))
    assert a == b and len(shard_files(tmp_path / "shards")) == 1
    assert run_dir.shards.done_keys().tolist() == [3, 4]


def test_an_unreadable_shard_is_quarantined_once_and_stale_temp_files_go(tmp_path):
    run_dir = RunDir.at(tmp_path)
    good = run_dir.shards.write(shard_table([1, 2], ["a", "b"]))
    bad = run_dir.shards.write(shard_table([3], ["c"]))
    (tmp_path / "shards" / bad).write_bytes(b"not arrow")
    (tmp_path / "shards" / ".part-0000000000000009-1-abcdef01.arrow.1234.tmp").write_bytes(b"x")
    seen = []
    assert run_dir.shards.done_keys(on_quarantine=seen.append).tolist() == [1, 2]
    assert [e.name for e in seen] == [bad] and "moved to shards/corrupt/" in str(seen[0])
    assert run_dir.shards.names() == [good] and run_dir.shards.corrupt_count() == 1
    assert not list((tmp_path / "shards").glob(".*tmp"))


def test_shards_record_what_ran_them_and_mixed_precisions_are_refused(tmp_path):
    def ran(table, precision):
        n = table.num_rows
        kind = pa.dictionary(pa.int8(), pa.string())
        return table.append_column("device", pa.array(["cpu"] * n).cast(kind)).append_column(
            "precision", pa.array([precision] * n).cast(kind))

    run = make_run(tmp_path, [ran(shard_table([1, 2], ["a", "b"]), "bf16"),
                              ran(shard_table([3], ["c"]), "bf16")])
    result = merge(run, {"precision": "auto"})
    assert result.ran_with == {"precision": "bf16", "devices": ["cpu"]}
    with h5py.File(run / "embeddings.h5") as h5:
        assert h5.attrs["precision"] == "bf16" and h5.attrs["devices"] == "cpu"
    RunDir.at(run).shards.write(ran(shard_table([4], ["d"]), "fp32"))
    with pytest.raises(VerificationError, match="different precisions: bf16 .*fp32"):
        merge(run)


def test_a_row_rejected_by_one_attempt_and_embedded_by_the_next_is_not_a_reject(tmp_path):
    import json as _json

    run = make_run(tmp_path, [shard_table([1, 2], ["a", "b"])])
    rejects = tmp_path / "rejects"
    rejects.mkdir(exist_ok=True)
    (rejects / f"encode-{2:019d}.jsonl").write_text(
        _json.dumps({"reason": "model_error", "key": 2}) + "\n")
    (rejects / f"encode-{3:019d}.jsonl").write_text(
        _json.dumps({"reason": "model_error", "key": 3}) + "\n")
    merge(run)
    assert sorted(p.name for p in rejects.glob("encode-*")) == [f"encode-{3:019d}.jsonl"]
