"""The driver's start (issue 21): it imports neither torch nor transformers before it describes
the model, starts an embedded Ray in a background thread meanwhile (session/start.py), and
hears of each shard as it is written. Real Ray, in child processes where a test needs a Ray
of its own (the suite's session Ray is already up in this one)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def child(code: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=str(ROOT))


def test_the_driver_reaches_the_model_description_without_torch_or_transformers():
    out = child("""
        import os, sys
        for name in ("TRANSFORMERS_VERBOSITY", "HF_HUB_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS"):
            os.environ.pop(name, None)
        import ray_job.cli as cli, ray_job.pipeline as pipeline
        from ray_job.config import JobConfig
        cli.quiet_libraries(False)
        cfg = JobConfig.of()
        device = pipeline.cluster_device(cfg, {"CPU": 2.0})
        assert device == ("cpu" if sys.platform != "darwin" else device), device
        assert pipeline.replica_request(cfg, {"CPU": 2.0})[0] == device
        heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers")
                       if m in sys.modules)
        print("heavy", heavy, os.environ["TRANSFORMERS_VERBOSITY"],
              os.environ["HF_HUB_DISABLE_PROGRESS_BARS"])
    """)
    assert out.returncode == 0, out.stderr
    assert "heavy [] error 1" in out.stdout


def test_a_users_own_library_verbosity_is_kept():
    out = child("""
        import os
        os.environ["TRANSFORMERS_VERBOSITY"] = "info"
        import ray_job.cli as cli
        cli.quiet_libraries(False)
        print(os.environ["TRANSFORMERS_VERBOSITY"])
    """, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["info"]


def test_ray_started_in_the_background_lives_until_closed_and_shuts_down():
    """The thread that started Ray stays alive: Ray's processes die with the thread that
    started them (a thread that returned right after ray.init left a dead GCS: the driver
    exited 1 on its next call)."""
    out = child("""
        import time, ray
        from ray_job.session.start import RayStart
        starting = RayStart(None, False).begin()
        starting.adopt()
        time.sleep(2)

        @ray.remote
        def square(x):
            return x * x

        assert ray.get(square.remote(7), timeout=60) == 49
        ray.shutdown()
        starting.close()
        assert not starting.thread.is_alive()

        never_adopted = RayStart(None, False).begin()    # a run refused before its session
        never_adopted.close()
        assert not ray.is_initialized() and not never_adopted.thread.is_alive()
        print("ok")
    """)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


def test_ray_inits_error_is_raised_in_the_main_thread_by_adopt():
    out = child("""
        from ray_job.session.start import RayStart
        starting = RayStart(None, False)
        starting.args = {**starting.args, "no_such_argument": 1}
        starting.begin()
        try:
            starting.adopt()
        except RuntimeError as exc:
            print("raised", type(exc).__name__, exc)
        starting.close()
    """, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "raised RuntimeError Unknown keyword argument(s): no_such_argument" in out.stdout


class Written:
    """A dataset's last stage as `write_shards` consumes it: records how it is iterated."""

    def __init__(self, batches):
        self.batches, self.kwargs = batches, None

    def map_batches(self, fn, **kwargs):
        return self

    def iter_batches(self, **kwargs):
        self.kwargs = kwargs
        return iter(self.batches)


def test_the_driver_takes_each_shards_name_as_it_comes_not_one_batch_late(tmp_path):
    import pyarrow as pa

    from ray_job.pipeline import write_shards
    from ray_job.rundir.rundir import RunDir
    from ray_job.rundir.tally import ShardTally

    ds = Written([pa.table({"shard": ["a", "b"], "rows": [3, 4]})])
    tally = ShardTally()
    write_shards(ds, RunDir(str(tmp_path)), tally)
    assert tally.rows() == 7
    # Ray Data's default prefetch (1) held each shard's row back until the next shard's
    # write: the first shard was heard of ~6 s after its file was complete (2 cores)
    assert ds.kwargs["prefetch_batches"] == 0


@pytest.mark.parametrize("cluster, device", [({"CPU": 8.0, "GPU": 2.0}, "cuda"),
                                             ({"CPU": 8.0}, "cpu")])
def test_auto_device_is_the_clusters_not_the_drivers(cluster, device, monkeypatch):
    from ray_job import pipeline
    from ray_job.config import JobConfig

    monkeypatch.setattr(pipeline, "may_have_mps", lambda: False)
    assert pipeline.cluster_device(JobConfig.of(), cluster) == device
    assert pipeline.cluster_device(JobConfig.of(device="cpu"), cluster) == "cpu"


@pytest.fixture
def short_tmp():
    """A directory with a short path (Ray's socket paths must stay under 108 bytes)."""
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="rs-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_signal_while_ray_starts_in_the_background_stops_cleanly(sample_path, tmp_path,
                                                                   short_tmp):
    """SIGTERM while the main thread describes the model and Ray's processes are starting in
    the background: the one line, exit 143, and the Ray it was starting shut down (none of
    its processes left behind)."""
    import signal
    import time

    from test_signals import alive, descendants

    out = tmp_path / "o"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": short_tmp}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-m", "ray_job", "run", "--input", str(sample_path),
                             "--output", str(out), "--limit", "20"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while not descendants(proc.pid) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    started = descendants(proc.pid)
    assert started and proc.poll() is None, f"Ray never started: {proc.communicate()}"
    assert not (out / "job.json").exists()                    # still planning
    os.kill(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == \
        "ray-embed: stopped (SIGTERM); run the same command to resume"
    assert "Traceback" not in stderr
    time.sleep(1)
    leftovers = alive(started | descendants(proc.pid))
    deadline = time.time() + 30
    while leftovers and time.time() < deadline:
        time.sleep(0.5)
        leftovers = alive(leftovers)
    assert not leftovers
