"""Chaos: SIGKILL the driver or a replica at a random moment, resume (sometimes with other
--replicas / --block-bytes), and check after each round that the output equals a clean run
and that report.json reconciles. A few rounds by default, more under -m slow."""
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


def start(out: Path, source: Path, rng: random.Random) -> subprocess.Popen:
    """A driver in a process of its own (with its own local Ray), to be killed."""
    chosen = flags(rng)
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


def strike(proc: subprocess.Popen, out: Path, rng: random.Random, target: str | None) -> str:
    """Wait a random moment into the encode phase, then kill the driver or one replica
    (`target`: "driver", "replica", or None for a random choice)."""
    deadline = time.time() + 240
    wanted = 0 if target == "replica" else rng.randint(0, 3)
    while time.time() < deadline and proc.poll() is None:
        ready = len(list((out / "shards").glob("part-*.arrow"))) >= wanted
        if ready and (target != "replica" or processes_in_session(proc.pid, "Encoder")):
            break
        time.sleep(0.1)
    time.sleep(rng.uniform(0, 0.3 if target == "replica" else 1.5))
    if proc.poll() is not None:
        return "finished first"
    replicas = processes_in_session(proc.pid, "Encoder")
    if replicas and (target == "replica" or (target is None and rng.random() < 0.4)):
        os.kill(rng.choice(replicas), signal.SIGKILL)
        proc.wait(timeout=600)
        return "replica killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return "driver killed"


def chaos_rounds(n: int, seed: int, dirty_input, clean_run, tmp_path, targets=None):
    ids, emb = clean_run
    for r in range(n):
        rng = random.Random(seed + r)
        out = tmp_path / f"round-{r}"
        what = strike(start(out, dirty_input, rng), out, rng, targets[r] if targets else None)
        assert not targets or what == f"{targets[r]} killed", what
        resume(out, dirty_input, rng)
        got_ids, got_emb = read(out)
        assert got_ids == ids, f"round {r} ({what})"
        np.testing.assert_allclose(got_emb, emb, rtol=1e-5, atol=1e-6)
        report = json.loads((out / "report.json").read_text())
        assert report["reconciliation"]["rows_seen"] == ROWS == report["rows_read"]
        assert report["rows_embedded"] + report["rows_rejected"] == ROWS


def test_chaos_a_few_rounds(local_ray, dirty_input, clean_run, tmp_path):
    """One driver and one replica killed at random moments (the replica's run goes on
    without it, then the same command again on other flags finds nothing left to do)."""
    chaos_rounds(2, 11, dirty_input, clean_run, tmp_path, targets=["driver", "replica"])


@pytest.mark.slow
def test_chaos_many_rounds(local_ray, dirty_input, clean_run, tmp_path):
    chaos_rounds(10, 100, dirty_input, clean_run, tmp_path)
