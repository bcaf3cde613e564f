"""Exactly once under faults: a dying encoder, a SIGKILLed driver, a damaged shard."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from conftest import reference_text, shard_files
from faultkit import FaultPlan, arm

from ray_job.config import JobConfig
from ray_job.errors import ConfigError, DataError
from ray_job.finish import finalize_run
from ray_job.pipeline import run
from ray_job.rundir.rundir import RunDir
from ray_job.rundir.shards import rows_in_name


def read(out):
    with h5py.File(out / "embeddings.h5") as h5:
        return [i.decode() for i in h5["ids"][:]], h5["embeddings"][:]


def assert_matches_reference(ids, emb, records, reference_model):
    assert ids == [r["id"] for r in records]                     # every row once, in order
    expected = reference_model.encode([reference_text(r) for r in records], batch_size=64)
    cos = (emb * expected).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(expected, axis=1)
    assert cos.min() >= 0.999


@pytest.mark.slow        # test_chaos kills a replica in the default run
def test_an_encoder_actor_that_dies_mid_run_loses_and_duplicates_nothing(
        local_ray, sample_path, sample_records, reference_model, tmp_path, monkeypatch):
    marker = tmp_path / "killed"
    arm(monkeypatch, tmp_path / "faults", FaultPlan(kill_encoder_after=1, marker=str(marker)))
    report = run(JobConfig.of(inputs=(str(sample_path),), output=str(tmp_path / "o"), limit=120,
                              shard_rows=24, precision="fp32"))
    assert marker.exists()                                       # the replica really died
    assert report["rows_embedded"] == 120
    assert_matches_reference(*read(tmp_path / "o"), sample_records[:120], reference_model)


@pytest.mark.slow        # test_chaos kills drivers at random moments in the default run
def test_a_driver_killed_mid_run_resumes_to_the_same_result(sample_path, sample_records,
                                                            reference_model, tmp_path):
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "ray_job", "run", "--input", str(sample_path), "--output",
           str(out), "--limit", "200", "--shard-rows", "16", "--block-bytes", "16000",
           "--precision", "fp32"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 240
    while len(shard_files(out / "shards")) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)                          # driver and its local Ray
    proc.wait()
    done_before = sum(rows_in_name(p.name) for p in shard_files(out / "shards"))
    assert 0 < done_before < 200 and not (out / "embeddings.h5").exists()

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["resumed"] and report["rows_embedded_this_run"] == 200 - done_before
    assert_matches_reference(*read(out), sample_records[:200], reference_model)


@pytest.mark.slow        # the same in S3 runs by default (test_remote_output), and test_finalize
def test_a_damaged_shard_is_refused_then_exactly_its_rows_are_recomputed(
        local_ray, sample_path, tmp_path):
    cfg = JobConfig.of(inputs=(str(sample_path),), output=str(tmp_path), limit=90, shard_rows=30,
                       block_bytes=20_000, precision="fp32")
    run(cfg)
    ids, emb = read(tmp_path)
    victim = shard_files(tmp_path / "shards")[1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF                                 # one flipped byte mid-file
    victim.write_bytes(bytes(data))
    with pytest.raises(DataError, match=victim.name):
        finalize_run(RunDir.at(tmp_path))
    report = run(cfg)
    assert report["rows_embedded_this_run"] == rows_in_name(victim.name)
    ids2, emb2 = read(tmp_path)
    assert ids2 == ids
    np.testing.assert_allclose(emb2, emb, rtol=1e-5, atol=1e-6)


def test_fault_injection_is_a_plan_outside_the_job_config_and_the_package(tmp_path):
    from ray_job import hooks
    from ray_job.config import OPTION_FIELDS, SPEC_FIELDS

    assert not [name for name in SPEC_FIELDS + OPTION_FIELDS if "fault" in name]
    with pytest.raises(ConfigError, match="unknown config key"):
        JobConfig.from_dict({"fault_kill_encoder_after": 1})
    assert hooks.installed() is None                         # production: no hooks
    marker = str(tmp_path / "m")
    with pytest.raises(ConfigError, match="kill_encoder_after"):
        FaultPlan(kill_encoder_after=2)                      # no marker
    plan = FaultPlan(2, marker)
    assert [plan.kill_encoder_now(calls) for calls in (1, 2, 3, 4)] == [False, False, True, False]
    assert not FaultPlan().kill_encoder_now(100)
