"""An object store that is down, refuses, or stalls longer than the retry budget: one line
(exit code 3) within a bounded time, never a hang or a traceback, and the same command
resumes once the store is back (storage/timeouts.py sets the budget)."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faultkit import arm, disarm, storage_plan
from test_faults import assert_matches_reference, read

from ray_job.storage import timeouts
from ray_job.storage.scratch import private_dir


@pytest.fixture
def fresh_s3fs():
    """s3fs keeps one filesystem per set of options: one made for another endpoint must not
    be reused here."""
    from s3fs import S3FileSystem

    S3FileSystem.clear_instance_cache()
    yield
    S3FileSystem.clear_instance_cache()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def one_line(result, code: int = 3) -> str:
    assert result.returncode == code, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("ray-embed:")]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def test_a_store_down_when_the_run_starts_is_one_line_with_its_log_in_scratch(
        ray_embed, sample_path, tmp_path, monkeypatch, fresh_s3fs):
    """Before: botocore's retries, then an EndpointConnectionError traceback."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setattr(timeouts, "STORE_ATTEMPTS", 2)          # the budget, short
    started = time.monotonic()
    result = ray_embed("run", "--input", str(sample_path), "--limit", "5",
                       "--output", "s3://down-bucket/run", cwd=tmp_path)
    assert time.monotonic() - started < 60
    line = one_line(result)
    # the first call to the store names what it tried (since part 1: the look-up of --output
    # that refuses a file, before the lease is written)
    assert re.match(r"ray-embed: failed: cannot (look up|write) s3://down-bucket/run\S*: "
                    r"EndpointConnectionError: Could not connect to the endpoint URL", line), line
    assert "once the storage answers, run the same command to resume" in line
    log = Path(line.rsplit("(full log: ", 1)[1].rstrip(")"))
    assert log.parent == private_dir("logs") and "EndpointConnectionError" in log.read_text()


def test_a_stalling_store_is_one_line_for_every_command(ray_embed, s3, tmp_path, monkeypatch):
    """`status`, `finalize`, `search` of a run in a store that stalls (injected at the door:
    every look-up times out)."""
    url = f"s3://{s3.bucket}/run"
    s3.put_object(Bucket=s3.bucket, Key="run/job.json", Body=b"{}")
    arm(monkeypatch, tmp_path / "faults", storage_plan(
        [{"op": "stat", "path": f"{s3.bucket}/run/*", "fault": "stall", "seconds": 0.2}]))
    for command in (["status", url], ["finalize", url], ["search", url, "neutrinos"]):
        line = one_line(ray_embed(*command, cwd=tmp_path))
        assert line.startswith(f"ray-embed: failed: cannot look up {url}/"), line
        assert ": Connection timed out" in line, line


@pytest.mark.slow      # ~10 s of botocore's backoff: the budget as shipped
def test_a_store_unreachable_fails_within_the_default_budget(ray_embed, tmp_path, monkeypatch,
                                                            fresh_s3fs):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    started = time.monotonic()
    line = one_line(ray_embed("status", "s3://down-bucket/run", cwd=tmp_path))
    assert time.monotonic() - started < 45         # 5 attempts: at most 1 + 2 + 4 + 8 s apart
    assert "Could not connect to the endpoint URL" in line


@pytest.mark.slow      # two runs; the default suite covers a task's failure (test_full_disk)
def test_a_store_failing_under_the_tasks_is_one_line_and_resumable(
        ray_embed, s3, sample_path, sample_records, reference_model, tmp_path, monkeypatch):
    url = f"s3://{s3.bucket}/run"
    args = ["run", "--input", str(sample_path), "--limit", "40", "--output", url,
            "--precision", "fp32", "--shard-rows", "16", "--block-bytes", "16000"]
    arm(monkeypatch, tmp_path / "faults", storage_plan(
        [{"op": "write", "path": "*/shards/part-*", "fault": "unreachable", "after": 1}]))
    line = one_line(ray_embed(*args, cwd=tmp_path))
    assert line.startswith(f"ray-embed: failed: cannot write {url}/shards/part-"), line
    assert "Connection refused" in line
    disarm(monkeypatch)
    assert ray_embed(*args, cwd=tmp_path).returncode == 0
    local = tmp_path / "copy"
    assert ray_embed("upload", url, f"file://{local}", cwd=tmp_path).returncode == 0
    assert_matches_reference(*read(local), sample_records[:40], reference_model)


@pytest.mark.slow      # a driver of its own with its own Ray; ~2 min
def test_the_store_stopped_mid_run_is_one_line_and_the_same_command_resumes(
        sample_path, sample_records, reference_model, tmp_path):
    """A real S3 API server (moto) stopped while the driver's tasks write shards to it, for
    longer than the retry budget; started again (its objects kept), the same command
    finishes the run."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = closed_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket="papers")
    cmd = [sys.executable, "-m", "ray_job", "run", "--input", str(sample_path), "--output",
           "s3://papers/run", "--limit", "200", "--shard-rows", "16", "--block-bytes", "16000",
           "--precision", "fp32"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and not client.list_objects_v2(
                Bucket="papers", Prefix="run/shards/").get("KeyCount"):
            time.sleep(0.5)
        assert proc.poll() is None, "the run ended before the store was stopped"
        server.stop()
        stopped = time.monotonic()
        _, stderr = proc.communicate(timeout=400)
        assert time.monotonic() - stopped < 300           # the retry budget, not a hang
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    result = subprocess.CompletedProcess(cmd, proc.returncode, "", stderr)
    assert "Could not connect to the endpoint URL" in one_line(result)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr[-3000:]
        local = tmp_path / "copy"
        subprocess.run([sys.executable, "-m", "ray_job", "upload", "s3://papers/run",
                        f"file://{local}"], env=env, check=True, capture_output=True)
        assert_matches_reference(*read(local), sample_records[:200], reference_model)
    finally:
        server.stop()
