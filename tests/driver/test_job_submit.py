"""`ray job submit` against a real local head that this test starts on its own ports, and stops."""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import h5py
import pytest
from hub_server import HubServer

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_dashboard(url: str, head: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        assert head.poll() is None, "ray start --head exited"
        try:
            with urllib.request.urlopen(f"{url}/api/version", timeout=2):
                return
        except urllib.error.HTTPError:
            return                                     # it answers (401: token auth is on)
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"no Ray dashboard at {url}")


@pytest.fixture(scope="module")
def hub():
    """A local Hub API server whose token the cluster's nodes hold in their environment."""
    with HubServer(token="hf_" + secrets.token_hex(16)) as server:
        yield server


@pytest.fixture(scope="module")
def ray_head(hub):
    """A head node on free loopback ports, in its own process group and temp dir; its
    environment holds the Hub endpoint and token, as a cluster's nodes would. One for the
    module: starting a head takes most of a minute."""
    gcs, dash = free_port(), free_port()
    # every port of its own: another Ray on this machine (the session's) holds the defaults,
    # and a clashing dashboard agent leaves the head with no job agent
    ports = {flag: free_port() for flag in (
        "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port",
        "runtime-env-agent-port", "ray-client-server-port", "node-manager-port",
        "object-manager-port")}
    temp = tempfile.mkdtemp(prefix="rjh", dir="/tmp")        # short: Ray's socket paths
    # token authentication, as Ray 2.6x clusters use it, with a token of this test's own
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token, "HF_HUB_DISABLE_XET": "1"}
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", f"--port={gcs}", "--num-cpus=2",
         "--node-ip-address=127.0.0.1", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={dash}", f"--temp-dir={temp}", "--disable-usage-stats",
         *[f"--{flag}={port}" for flag, port in ports.items()]],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{dash}"
    try:
        wait_for_dashboard(url, head)
        yield url, env, Path(temp), f"127.0.0.1:{gcs}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)            # only the processes this test started
        try:   # a blocked head takes ~30 s to stop: a moment for the GCS and raylet, then kill
            head.wait(timeout=1)                       # (its workers exit with their raylet)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()


@pytest.mark.timeout(600)
def test_ray_job_submit_runs_the_job_on_the_cluster(ray_head, hub, sample_path, tmp_path):
    url, env, ray_temp, _ = ray_head
    out = tmp_path / "run"
    command = [str(BIN / "ray"), "job", "submit", "--address", url, "--working-dir", str(ROOT),
               "--", "python", "-m", "ray_job", "run", "--address", "auto", "--input",
               str(sample_path), "--limit", "40", "--output", str(out), "--url-template", "arxiv",
               "--upload", "hf://datasets/team/arxiv-emb"]
    for _ in range(20):   # a new head answers HTTP before its job agent is ready: not submitted
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=540)
        if "No available agent to submit job" not in result.stderr + result.stdout:
            break
        time.sleep(2)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "succeeded" in (result.stdout + result.stderr).lower()
    assert "wrote 40 embeddings (dim 384)" in result.stdout
    with h5py.File(out / "embeddings.h5") as h5:
        assert h5["embeddings"].shape == (40, 384)
        assert h5["urls"][0] == b"https://arxiv.org/pdf/0704.0001.pdf"
    assert hub.files("team/arxiv-emb")["embeddings.h5"] == (out / "embeddings.h5").read_bytes()
    # the token the nodes hold is in none of Ray's job metadata, logs or files
    jobs = subprocess.run([str(BIN / "ray"), "list", "jobs", "--detail", "--address", url],
                          env=env, capture_output=True, text=True, timeout=60)
    assert "arxiv-emb" in jobs.stdout                   # the job's entrypoint is listed
    assert hub.token not in result.stdout + result.stderr + jobs.stdout + jobs.stderr
    secret = hub.token.encode()
    leaks = [str(p) for root in (out, ray_temp) for p in root.rglob("*")
             if p.is_file() and not p.is_symlink() and not p.is_socket()
             and secret in p.read_bytes()]
    assert leaks == []


# slow: a second head start (~12 s); `ray job submit` itself stays in the default suite
@pytest.mark.slow
def test_a_client_without_the_token_gets_a_one_line_hint(ray_head, sample_path, tmp_path):
    """The trap: a head with token authentication (what a machine with ~/.ray/auth_token
    starts), a client without RAY_AUTH_MODE=token and the token: one line saying what to set."""
    _, env, _, gcs = ray_head
    client = {k: v for k, v in env.items() if not k.startswith("RAY_AUTH")}
    client["HOME"] = str(tmp_path)                       # no ~/.ray/auth_token here
    client["RAY_NUM_REDIS_GET_RETRIES"] = "2"    # Ray retries a refused token ~1 s x 20 times
    result = subprocess.run(
        [sys.executable, "-m", "ray_job", "run", "--address", gcs, "--input", str(sample_path),
         "--limit", "5", "--output", str(tmp_path / "run")],
        env={**client, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("ray-embed:")]
    assert len(lines) == 1 and "RAY_AUTH_MODE=token" in lines[0], result.stderr[-3000:]
    assert "Traceback" not in result.stderr


def ray_job(url: str, env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    verb, *rest = args
    return subprocess.run([str(BIN / "ray"), "job", verb, "--address", url, *rest], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow            # one more job on the module's head: ~1-2 min
@pytest.mark.timeout(600)
def test_ray_job_stop_stops_the_driver_in_one_line_and_releases_the_lease(ray_head, sample_path,
                                                                          tmp_path):
    """`ray job stop` sends SIGTERM to the driver (and its children), then SIGKILL after
    RAY_JOB_STOP_WAIT_TIME_S (3 s): within that the driver prints its one line, releases the
    lease and ends with 143; no `*** SIGTERM received ... PC: @` dump in the job's log."""
    url, env, _, _ = ray_head
    out = tmp_path / "run"
    job_id = f"stop-{secrets.token_hex(4)}"
    command = ["submit", "--no-wait", "--submission-id", job_id, "--working-dir", str(ROOT),
               "--", "python", "-m", "ray_job", "run", "--address", "auto", "--input",
               str(sample_path), "--output", str(out), "--shard-rows", "16",
               "--block-bytes", "16000", "--precision", "fp32"]
    for _ in range(20):   # a new head answers HTTP before its job agent is ready: not submitted
        submitted = ray_job(url, env, *command)
        if "No available agent to submit job" not in submitted.stderr + submitted.stdout:
            break
        time.sleep(2)
    assert submitted.returncode == 0, (submitted.stdout + submitted.stderr)[-3000:]
    deadline = time.time() + 400
    while not list((out / "shards").glob("part-*.arrow")) and time.time() < deadline:
        status = ray_job(url, env, "status", job_id).stdout
        assert "FAILED" not in status and "SUCCEEDED" not in status, status
        time.sleep(1)
    assert (out / "lease.json").exists(), "no shard before the deadline"
    stopped = ray_job(url, env, "stop", job_id)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    deadline = time.time() + 60
    while "STOPPED" not in ray_job(url, env, "status", job_id).stdout and time.time() < deadline:
        time.sleep(1)
    time.sleep(2)                                      # the job's log reaches the head
    logs = ray_job(url, env, "logs", job_id).stdout
    assert logs.strip().splitlines()[-1] == \
        "ray-embed: stopped (SIGTERM); run the same command to resume", logs[-3000:]
    for dump in ("Traceback", "PC: @", "received at time", "Segmentation"):
        assert dump not in logs, logs[-3000:]
    assert not (out / "lease.json").exists()          # released before the SIGKILL
    assert not (out / "embeddings.h5").exists()
