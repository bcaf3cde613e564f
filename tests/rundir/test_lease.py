"""One driver per run directory: the lease (no Ray needed)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from ray_job.errors import UserError
from ray_job.rundir import lease as lease_module
from ray_job.rundir.rundir import RunDir


def test_a_second_driver_is_refused_naming_the_holder_and_the_lease_goes_on_exit(tmp_path):
    run_dir = RunDir.at(tmp_path)
    with run_dir.lease():
        with pytest.raises(UserError, match=r"in use by another ray-embed driver \(host .*pid \d+"):
            with RunDir.at(tmp_path).lease():
                pass
        assert (tmp_path / "lease.json").exists()
    assert not (tmp_path / "lease.json").exists()
    with run_dir.lease():                     # free again
        pass


def test_fresh_and_clear_never_remove_a_held_lease(tmp_path):
    run_dir = RunDir.at(tmp_path)
    with run_dir.lease():
        run_dir.clear()
        assert (tmp_path / "lease.json").exists()


def test_a_lease_whose_driver_died_on_this_host_is_taken_over_at_once(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    record = {"owner": "x", "host": lease_module.socket.gethostname(), "pid": int(dead),
              "started": time.time(), "heartbeat": time.time()}
    (tmp_path / "lease.json").write_text(json.dumps(record))
    with RunDir.at(tmp_path).lease() as held:
        assert json.loads((tmp_path / "lease.json").read_text())["owner"] == held.record.owner


def test_a_lease_from_another_host_is_stale_only_after_missed_heartbeats(tmp_path):
    record = {"owner": "x", "host": "elsewhere", "pid": 1, "started": 0.0,
              "heartbeat": time.time()}
    (tmp_path / "lease.json").write_text(json.dumps(record))
    with pytest.raises(UserError, match="host elsewhere"):
        with RunDir.at(tmp_path).lease():
            pass
    record["heartbeat"] = time.time() - lease_module.STALE_AFTER_S - 1
    (tmp_path / "lease.json").write_text(json.dumps(record))
    with RunDir.at(tmp_path).lease():
        pass


def test_the_heartbeat_renews_the_lease(tmp_path):
    lease = lease_module.Lease(RunDir.at(tmp_path).store, "lease.json", "here", heartbeat_s=0.05)
    with lease:
        first = json.loads((tmp_path / "lease.json").read_text())["heartbeat"]
        time.sleep(0.3)
        assert json.loads((tmp_path / "lease.json").read_text())["heartbeat"] > first


def test_the_lease_in_object_storage_is_a_conditional_create(s3):
    url = f"s3://{s3.bucket}/runs/leased"
    with RunDir.at(url).lease():
        with pytest.raises(UserError, match="in use by another ray-embed driver"):
            with RunDir.at(url).lease():
                pass
        assert "runs/leased/lease.json" in {
            o["Key"] for o in s3.list_objects_v2(Bucket=s3.bucket)["Contents"]}
    assert "Contents" not in s3.list_objects_v2(Bucket=s3.bucket, Prefix="runs/leased/lease")
