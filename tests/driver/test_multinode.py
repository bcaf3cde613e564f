"""Many nodes on one machine: one replica per (fake) GPU across nodes, CPU fallback where CUDA
is absent, output equal to a local run; a worker node lost mid-run loses no row."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import reference_text

HERE = Path(__file__).resolve().parents[1]


def multinode(sample_path, out, limit, lose):
    result = subprocess.run([sys.executable, str(HERE / "multinode_run.py"), str(sample_path),
                             str(out), str(limit), "lose" if lose else "keep"],
                            capture_output=True, text=True, timeout=560, cwd=HERE)
    assert result.returncode == 0, result.stderr[-4000:]
    line = [printed for printed in result.stdout.splitlines() if printed.startswith("REPORT ")][-1]
    return json.loads(line[len("REPORT "):])


def check_output(h5_file, records, reference_model):
    with h5py.File(h5_file) as h5:
        ids, emb = [i.decode() for i in h5["ids"][:]], h5["embeddings"][:]
    assert ids == [r["id"] for r in records]
    expected = reference_model.encode([reference_text(r) for r in records], batch_size=64)
    cos = (emb * expected).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(expected, axis=1)
    assert cos.min() >= 0.999


# slow: a 3-node cluster (~50 s); a cluster run in the default suite: test_job_submit
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_one_replica_per_gpu_across_nodes_writing_to_s3(sample_path, sample_records,
                                                        reference_model, s3):
    """The run directory is in object storage (the S3 server on loopback), as on a real
    cluster without a shared filesystem: shards come from the nodes, the driver finalizes."""
    report = multinode(sample_path, f"s3://{s3.bucket}/multi", 60, lose=False)
    job = json.loads(s3.get_object(Bucket=s3.bucket, Key="multi/job.json")["Body"].read())
    assert job["device"] == "cuda" and report["replicas"] == 2      # one replica per GPU asked
    assert report["device"] == "cpu"        # what ran: the fake GPUs have no CUDA behind them
    listed = s3.list_objects_v2(Bucket=s3.bucket, Prefix="multi/shards/")["Contents"]
    assert len(listed) >= 2
    body = s3.get_object(Bucket=s3.bucket, Key="multi/embeddings.h5")["Body"].read()
    check_output(io.BytesIO(body), sample_records[:60], reference_model)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_losing_a_worker_node_mid_run_loses_no_row(sample_path, sample_records, reference_model,
                                                   tmp_path):
    report = multinode(sample_path, tmp_path / "o", 120, lose=True)
    assert report["rows_embedded"] == 120
    assert 0 < report["rows_done_at_removal"] < 120          # the node went while work remained
    check_output(tmp_path / "o" / "embeddings.h5", sample_records[:120], reference_model)
