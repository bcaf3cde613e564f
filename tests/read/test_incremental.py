"""Weekly snapshot updates: only new and changed papers are encoded; the result equals a full
run."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from ray_job.config import JobConfig
from ray_job.errors import UserError
from ray_job.pipeline import run
from ray_job.rundir.rundir import RunDir


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def read(out):
    with h5py.File(RunDir.at(out).results.local("embeddings.h5")) as h5:   # local, or from S3
        return h5["ids"][:].tolist(), h5["embeddings"][:], h5["text_hashes"][:]


# slow: two runs through S3 (~25 s); --previous in the default suite: test_pinned_previous,
# test_properties_run
@pytest.mark.slow
def test_second_snapshot_reencodes_only_new_and_changed_papers(local_ray, s3, sample_records,
                                                               tmp_path):
    """Both weekly runs live in object storage (the loopback S3 server): week 2 reads week 1's
    embeddings.h5 from there and writes its reuse lists there."""
    week1 = sample_records[:40]
    week2 = [dict(r) for r in sample_records[5:40]]               # 5 papers withdrawn
    for r in week2[:5]:                                           # 5 abstracts revised
        r["abstract"] = r["abstract"] + " We also release our code."
    week2 += sample_records[100:105]                              # 5 new papers
    v1 = write_jsonl(tmp_path / "snapshot-1.jsonl", week1)
    v2 = write_jsonl(tmp_path / "snapshot-2.jsonl", week2)
    common = dict(precision="fp32", url_template="arxiv")
    w1, w2 = f"s3://{s3.bucket}/w1", f"s3://{s3.bucket}/w2"
    run(JobConfig.of(inputs=(str(v1),), output=w1, **common))
    report = run(JobConfig.of(inputs=(str(v2),), output=w2, previous=w1, **common))
    assert report["incremental"]["reused"] == 30
    assert (report["incremental"]["new"], report["incremental"]["changed"]) == (5, 5)
    assert report["incremental"]["removed"] == 5
    assert report["rows_embedded_this_run"] == 10 and report["rows_embedded"] == 40
    listed = s3.list_objects_v2(Bucket=s3.bucket, Prefix="w2/reuse/")["Contents"]
    assert any(o["Key"].endswith(".arrow") for o in listed)
    run(JobConfig.of(inputs=(str(v2),), output=str(tmp_path / "full"), **common))
    ids, emb, hashes = read(w2)
    full_ids, full_emb, full_hashes = read(tmp_path / "full")
    assert ids == full_ids and hashes.tolist() == full_hashes.tolist()
    np.testing.assert_allclose(emb, full_emb, rtol=1e-5, atol=1e-6)


def test_previous_run_with_another_model_setting_is_refused(local_ray, sample_records, tmp_path):
    v1 = write_jsonl(tmp_path / "s.jsonl", sample_records[:10])
    run(JobConfig.of(inputs=(str(v1),), output=str(tmp_path / "w1"), precision="fp32"))
    with pytest.raises(UserError, match="text_template"):
        run(JobConfig.of(inputs=(str(v1),), output=str(tmp_path / "w2"), precision="fp32",
                      text="{abstract}", previous=str(tmp_path / "w1")))
