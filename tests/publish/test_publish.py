"""Publishing to object stores: a real S3 API server (moto) on loopback, and file://."""
from __future__ import annotations

import hashlib
import json

import pytest

from ray_job.config import JobConfig
from ray_job.errors import UserError
from ray_job.pipeline import run
from ray_job.publish.upload import upload


def test_upload_to_s3_then_a_rerun_uploads_nothing(finished_run, s3):
    first = upload(finished_run, f"s3://{s3.bucket}/runs/week47")
    assert sorted(first.uploaded) == ["README.md", "embeddings.h5", "job.json",
                                      "parquet/part-00000.parquet", "report.json"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3.bucket)["Contents"]}
    assert keys == {f"runs/week47/{n}" for n in first.uploaded} | {"runs/week47/MANIFEST.json"}
    body = s3.get_object(Bucket=s3.bucket, Key="runs/week47/embeddings.h5")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(
        (finished_run / "embeddings.h5").read_bytes()).hexdigest()
    card = s3.get_object(Bucket=s3.bucket, Key="runs/week47/README.md")["Body"].read().decode()
    assert "all-MiniLM-L6-v2" in card and "| dim | 384 |" in card and "| count | 20 |" in card
    again = upload(finished_run, f"s3://{s3.bucket}/runs/week47")
    assert again.uploaded == [] and len(again.unchanged) == 5


def test_upload_to_a_local_url_leaves_no_partial_files(finished_run, tmp_path):
    result = upload(finished_run, f"file://{tmp_path}/pub")
    assert "embeddings.h5" in result.uploaded
    names = sorted(p.name for p in (tmp_path / "pub").rglob("*"))
    assert not [n for n in names if n.startswith(".partial-")]
    manifest = json.loads((tmp_path / "pub" / "MANIFEST.json").read_text())
    assert manifest["embeddings.h5"]["size"] == (finished_run / "embeddings.h5").stat().st_size


def test_a_destination_without_a_protocol_is_refused_clearly(finished_run):
    with pytest.raises(UserError, match="needs a protocol"):
        upload(finished_run, "some/local/dir")


def test_upload_every_publishes_shards_while_the_run_goes_on(local_ray, sample_path, tmp_path):
    dest = tmp_path / "pub"
    run(JobConfig.of(inputs=(str(sample_path),), output=str(tmp_path / "o"), limit=60,
                  block_bytes=20_000, shard_rows=16, upload=f"file://{dest}", upload_every=1))
    local = sorted(p.name for p in (tmp_path / "o" / "shards").glob("part-*.arrow"))
    assert len(local) > 1
    assert sorted(p.name for p in (dest / "shards").iterdir()) == local
    assert (dest / "embeddings.h5").is_file() and (dest / "MANIFEST.json").is_file()
