"""SIGTERM (what `ray job stop` sends) and SIGINT to a driver mid-run, on the real sample: one
line, exit 143 / 130, the lease released, Ray shut down, no C++ dump and no traceback; the
same command then resumes to the full result."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import shard_files
from test_faults import assert_matches_reference, read

from ray_job.config import JobConfig
from ray_job.pipeline import run

LIMIT = 200


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc: the driver's local Ray)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.add(pid)
    return running


# slow: a real driver, its own Ray, killed and resumed (~60 s); the exit codes and the one line
# of a stop: test_failure_log (default)
@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [
    (signal.SIGTERM, 143),
    pytest.param(signal.SIGINT, 130, marks=pytest.mark.slow),   # the same path, another signal
])
def test_a_signal_stops_the_driver_in_one_line_and_the_same_command_resumes(
        signum, code, local_ray, sample_path, sample_records, reference_model, tmp_path):
    """Before: 13 lines of `*** SIGTERM received ... PC: @` from Ray's C++ signal handler,
    no `finally` run (the lease left behind), exit code 15."""
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "ray_job", "run", "--input", str(sample_path), "--output",
           str(out), "--limit", str(LIMIT), "--shard-rows", "16", "--block-bytes", "16000",
           "--precision", "fp32"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 300
    while not shard_files(out / "shards") and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be stopped"
    ray_processes = descendants(proc.pid)
    assert ray_processes                                         # its local Ray
    os.kill(proc.pid, signum)                                    # the driver alone
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == \
        f"ray-embed: stopped ({signum.name}); run the same command to resume"
    for dump in ("Traceback", "PC: @", "received at time", "Segmentation"):
        assert dump not in stderr, stderr[-3000:]
    assert not (out / "lease.json").exists()                     # released
    deadline = time.time() + 30
    while alive(ray_processes) and time.time() < deadline:       # Ray shut down
        time.sleep(0.5)
    assert not alive(ray_processes)
    assert not (out / "embeddings.h5").exists()

    # the same command, in this process on the session's Ray (one Ray start less)
    report = run(JobConfig.of(inputs=(str(sample_path),), output=str(out), limit=LIMIT,
                              shard_rows=16, block_bytes=16000, precision="fp32"))
    assert report["resumed"] and 0 < report["rows_embedded_this_run"] < LIMIT
    assert_matches_reference(*read(out), sample_records[:LIMIT], reference_model)


def test_a_stop_raised_inside_a_c_call_still_reads_as_the_stop():
    """The handler's `Stopped`, raised while a C function runs, comes out as a SystemError
    ("returned a result with an exception set") whose context is the stop: exit 143, the one
    line, no log (it was exit 4, an 'unexpected SystemError')."""
    import signal as signals

    from ray_job.errors import Stopped
    from ray_job.outcome import outcome_of

    try:
        try:
            raise Stopped(signals.SIGTERM)
        except Stopped as stop:
            raise SystemError("<built-in method __new__> returned a result with an "
                              "exception set") from stop
    except SystemError as wrapped:
        outcome = outcome_of(wrapped)
    assert (outcome.code, outcome.logged) == (143, False)
    assert outcome.line == "ray-embed: stopped (SIGTERM); run the same command to resume"
