"""A run directory in object storage (--output s3://bucket/run): Ray workers write shards and
rejects straight to the S3 API server on loopback (moto), the driver finalizes from there and
publishes embeddings.h5 + report.json next to them. A new driver (empty staging) resumes."""
from __future__ import annotations

import io
import json
import shutil

import h5py
import numpy as np
import pytest

from ray_job.config import JobConfig
from ray_job.finish import finalize_run
from ray_job.pipeline import run
from ray_job.publish.upload import upload
from ray_job.rundir.rundir import RunDir
from ray_job.rundir.shards import CorruptShard
from ray_job.rundir.status import run_status
from ray_job.search.search import search


def keys_under(s3, prefix: str) -> set[str]:
    listed = s3.list_objects_v2(Bucket=s3.bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"][len(prefix):] for o in listed}


def h5_from_s3(s3, key: str) -> tuple[list[str], np.ndarray]:
    body = s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read()
    with h5py.File(io.BytesIO(body), "r") as h5:
        return h5["ids"][:].astype(str).tolist(), h5["embeddings"][:]


@pytest.fixture
def bad_sample(sample_path, tmp_path):
    """The first 40 real records plus one malformed line (a reject that must reach the store)."""
    lines = sample_path.read_text().splitlines(keepends=True)[:40]
    path = tmp_path / "sample-40.jsonl"
    path.write_text("".join(lines[:20]) + "{not json\n" + "".join(lines[20:]))
    return path


def test_a_run_in_s3_writes_shards_there_and_resumes_on_a_new_driver(
        local_ray, s3, bad_sample, sample_records):
    url = f"s3://{s3.bucket}/runs/a"
    cfg = JobConfig.of(inputs=(str(bad_sample),), output=url, block_bytes=16_000, shard_rows=8,
                    precision="fp32")
    report = run(cfg)
    assert report["rows_embedded"] == 40 and report["output"] == f"{url}/embeddings.h5"
    names = keys_under(s3, "runs/a/")
    shards = sorted(n for n in names if n.startswith("shards/part-"))
    assert len(shards) >= 3
    assert {"job.json", "report.json", "embeddings.h5"} <= names
    assert not [n for n in names if ".tmp" in n or "/." in n]
    rejects = [n for n in names if n.startswith("rejects/")]
    assert len(rejects) == 1
    reject = json.loads(s3.get_object(Bucket=s3.bucket, Key=f"runs/a/{rejects[0]}")["Body"].read())
    assert reject["reason"] == "bad_json"
    ids, emb = h5_from_s3(s3, "runs/a/embeddings.h5")
    assert ids == [r["id"] for r in sample_records[:40]]
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-3)
    stored = json.loads(s3.get_object(Bucket=s3.bucket, Key="runs/a/report.json")["Body"].read())
    assert stored["rows_embedded"] == 40

    status = run_status(url)
    assert status["finalized"] and status["rows_done"] == 40
    assert status["rejected_by_reason"] == {"bad_json": 1}

    # a node lost one shard's upload and the driver machine is gone: resume from the store only
    lost = shards[1]
    lost_rows = int(lost.split("-")[2])
    s3.delete_object(Bucket=s3.bucket, Key=f"runs/a/{lost}")
    shutil.rmtree(RunDir.at(url).cache_dir)
    again = run(cfg)
    assert again["resumed"] and again["rows_embedded_this_run"] == lost_rows
    ids2, emb2 = h5_from_s3(s3, "runs/a/embeddings.h5")
    assert ids2 == ids
    np.testing.assert_allclose(emb2, emb, atol=1e-5)


# slow: ~20 s; a run in S3 resuming on a new driver stays in the default suite
@pytest.mark.slow
def test_a_corrupt_shard_in_s3_is_moved_aside_and_recomputed_and_the_url_is_searchable(
        local_ray, s3, sample_path, sample_records, tmp_path):
    url = f"s3://{s3.bucket}/runs/b"
    cfg = JobConfig.of(inputs=(str(sample_path),), output=url, limit=30, block_bytes=16_000,
                    shard_rows=8, precision="fp32")
    run(cfg)
    ids, emb = h5_from_s3(s3, "runs/b/embeddings.h5")
    victim = sorted(n for n in keys_under(s3, "runs/b/") if n.startswith("shards/part-"))[0]
    body = bytearray(s3.get_object(Bucket=s3.bucket, Key=f"runs/b/{victim}")["Body"].read())
    body[len(body) // 2] ^= 0xFF                        # a flipped byte inside the embeddings
    s3.put_object(Bucket=s3.bucket, Key=f"runs/b/{victim}", Body=bytes(body))
    shutil.rmtree(RunDir.at(url).cache_dir)                   # a new driver: only the store is left

    with pytest.raises(CorruptShard, match="checksum"):
        finalize_run(RunDir.at(url))
    moved = victim.replace("shards/", "shards/corrupt/")
    assert moved in keys_under(s3, "runs/b/") and victim not in keys_under(s3, "runs/b/")

    again = run(cfg)
    assert again["rows_embedded_this_run"] == int(victim.split("-")[2])
    ids2, emb2 = h5_from_s3(s3, "runs/b/embeddings.h5")
    assert ids2 == ids
    np.testing.assert_allclose(emb2, emb, atol=1e-5)

    shutil.rmtree(RunDir.at(url).cache_dir)
    title = sample_records[3]["title"]
    assert search(url, [title], k=3)[0][0].id == sample_records[3]["id"]
    published = upload(url, f"file://{tmp_path}/pub")
    assert "embeddings.h5" in published.uploaded
    assert (tmp_path / "pub" / "embeddings.h5").read_bytes() == s3.get_object(
        Bucket=s3.bucket, Key="runs/b/embeddings.h5")["Body"].read()
