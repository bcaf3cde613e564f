"""Chaos: SIGKILL the driver or a replica at a random moment, resume (sometimes with other
--replicas / --block-bytes), and check after each round that the output equals a clean run
and that report.json reconciles. By default one driver takes both strikes (a replica, then
itself); ten random rounds under -m slow."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from ray_job.config import JobConfig
from ray_job.pipeline import run

ROWS = 96


@pytest.fixture(scope="module")
def dirty_input(sample_path, tmp_path_factory):
    lines = sample_path.read_text().splitlines(keepends=True)[:ROWS]
    path = tmp_path_factory.mktemp("chaos") / "dirty.jsonl"
    path.write_text("".join(line if i % 13 else "{bad\n" for i, line in enumerate(lines)))
    return path


@pytest.fixture(scope="module")
def clean_run(local_ray, dirty_input, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    run(JobConfig.of(inputs=(str(dirty_input),), output=str(out), precision="fp32"))
    return read(out)


def read(out: Path):
    with h5py.File(out / "embeddings.h5") as h5:
        return h5["ids"][:].tolist(), h5["embeddings"][:]


def flags(rng: random.Random) -> dict:
    return {"block_bytes": rng.choice([8_000, 16_000, 40_000]), "replicas": rng.choice([1, 1, 2])}


def start(out: Path, source: Path, chosen: dict) -> subprocess.Popen:
    """A driver in a process of its own (with its own local Ray), to be killed."""
    cmd = [sys.executable, "-m", "ray_job", "run", "--input", str(source), "--output", str(out),
           "--precision", "fp32", "--shard-rows", "16",
           "--block-bytes", str(chosen["block_bytes"]), "--replicas", str(chosen["replicas"])]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, text=True)


def resume(out: Path, source: Path, rng: random.Random) -> dict:
    """The same command again, in this process on the session's Ray, with other flags maybe."""
    return run(JobConfig.of(inputs=(str(source),), output=str(out), precision="fp32",
                            shard_rows=16, **flags(rng)))


def processes_in_session(sid: int, marker: str) -> list[int]:
    """Processes of the driver's session (its Ray's workers have process groups of their own,
    but stay in the session the driver leads) whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) != sid:
                continue
            if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except (OSError, ProcessLookupError):
            continue
    return found


def strike(proc: subprocess.Popen, out: Path, rng: random.Random) -> str:
    """Wait a random moment into the encode phase, then kill the driver or one replica."""
    wanted = rng.randint(0, 3)
    wait_until(lambda: shards_written(out) >= wanted, proc)
    time.sleep(rng.uniform(0, 1.5))
    if proc.poll() is not None:
        return "finished first"
    replicas = processes_in_session(proc.pid, "Encoder")
    if replicas and rng.random() < 0.4:
        os.kill(rng.choice(replicas), signal.SIGKILL)
        proc.wait(timeout=600)
        return "replica killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return "driver killed"


def chaos_rounds(n: int, seed: int, dirty_input, clean_run, tmp_path):
    for r in range(n):
        rng = random.Random(seed + r)
        out = tmp_path / f"round-{r}"
        what = strike(start(out, dirty_input, flags(rng)), out, rng)
        resume(out, dirty_input, rng)
        assert_equals_clean_run(out, clean_run, f"round {r} ({what})")


def assert_equals_clean_run(out: Path, clean_run, what: str) -> None:
    ids, emb = clean_run
    got_ids, got_emb = read(out)
    assert got_ids == ids, what
    np.testing.assert_allclose(got_emb, emb, rtol=1e-5, atol=1e-6)
    report = json.loads((out / "report.json").read_text())
    assert report["reconciliation"]["rows_seen"] == ROWS == report["rows_read"]
    assert report["rows_embedded"] + report["rows_rejected"] == ROWS


def shards_written(out: Path) -> int:
    return len(list((out / "shards").glob("part-*.arrow")))


def wait_until(ready, proc: subprocess.Popen, seconds: float = 240) -> bool:
    """Poll `ready()` while the driver lives; its last answer once the driver has ended or
    the time has run out."""
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None:
        if ready():
            return True
        time.sleep(0.1)
    return ready()


# slow: a cluster, a replica and the driver killed (~50 s); kills at generated points in the
# default suite: test_properties_run
@pytest.mark.slow
def test_a_replica_then_the_driver_killed(local_ray, dirty_input, clean_run, tmp_path):
    """One driver (one process start, one local Ray) takes both strikes: its only replica is
    killed and the run goes on writing shards without it (a new replica), then the driver
    itself is killed; the same command again on other flags finishes the job, and the output
    equals a clean run."""
    rng = random.Random(11)
    out = tmp_path / "struck"
    proc = start(out, dirty_input, {"block_bytes": 8_000, "replicas": 1})
    try:
        assert wait_until(lambda: processes_in_session(proc.pid, "Encoder"), proc), \
            proc.stderr.read() if proc.poll() is not None else "no replica in 240 s"
        os.kill(rng.choice(processes_in_session(proc.pid, "Encoder")), signal.SIGKILL)
        before = shards_written(out)
        assert wait_until(lambda: shards_written(out) > before, proc), \
            "no shard written after the replica was killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "report.json").exists(), "the driver finished before it was killed"
    resume(out, dirty_input, rng)
    assert_equals_clean_run(out, clean_run, "replica, then driver killed")


@pytest.mark.slow
def test_chaos_many_rounds(local_ray, dirty_input, clean_run, tmp_path):
    chaos_rounds(10, 100, dirty_input, clean_run, tmp_path)
