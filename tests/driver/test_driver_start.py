"""The driver's start: it imports neither torch nor transformers before it describes the
model, plans the job before it starts Ray (a refused job never starts it), handles a stop
right after Ray is up as its own, and hears of each shard as it is written. Real Ray, in
child processes where a test needs a Ray of its own (the suite's session Ray is already up
in this one)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.mark.slow   # default cover: every pipeline test runs in a session (test_end_to_end)
def test_a_session_starts_ray_in_the_main_thread_and_shuts_down_what_it_started():
    out = child("""
        import ray
        from ray_job.config import JobConfig
        from ray_job.session import ray_session

        cfg = JobConfig.of()
        with ray_session(cfg):
            assert ray.get(ray.put(3)) == 3
        assert not ray.is_initialized()
        try:
            with ray_session(cfg):
                raise ValueError("refused mid-run")
        except ValueError:
            pass
        assert not ray.is_initialized()                  # shut down on the way out
        print("ok")
    """)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


def test_a_job_its_plan_refuses_never_starts_ray(tmp_path):
    out = child(f"""
        import sys
        from ray_job import pipeline
        from ray_job.config import JobConfig
        from ray_job.errors import UserError

        cfg = JobConfig.of(inputs=("{tmp_path}/missing.jsonl",), output="{tmp_path}/o")
        try:
            pipeline.run(cfg)
        except UserError as exc:
            ray = sys.modules.get("ray")
            print("refused; ray started:", bool(ray and ray.is_initialized()))
    """)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "refused; ray started: False" in out.stdout


@pytest.mark.slow   # default cover: test_a_signal_right_after_ray_started_stops_cleanly (a
                    # real driver SIGTERMed in the same window: one line, exit 143, no dump)
def test_a_signal_once_ray_is_up_is_the_drivers_not_rays():
    """Ray's handlers (its Python `sys.exit`, its C++ dump of `*** SIGTERM received ... PC: @`)
    are replaced right after `ray.init`, in the main thread."""
    out = child("""
        import os, signal, time, ray
        from ray_job.config import JobConfig
        from ray_job.errors import Stopped
        from ray_job.session import ray_session
        from ray_job.session.signals import stop_on_signals

        with stop_on_signals():
            try:
                with ray_session(JobConfig.of()):
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(10)
            except Stopped as exc:
                print("stopped", exc, "ray up after:", ray.is_initialized())
    """)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "stopped SIGTERM ray up after: False" in out.stdout
    assert "SIGTERM received" not in out.stderr and "PC: @" not in out.stderr


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
    from ray_job.rundir.tally import ShardTally

    ds = Written([pa.table({"shard": ["a", "b"], "rows": [3, 4], "first_key": [0, 9],
                            "last_key": [8, 20]})])
    tally, read = ShardTally(), []
    write_shards(ds, tally, read=lambda *shard: read.append(shard))
    assert tally.rows() == 7 and read == [(0, 8, 3), (9, 20, 4)]      # and which keys each held
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


def test_a_signal_right_after_ray_started_stops_cleanly(sample_path, tmp_path, short_tmp):
    """SIGTERM once the driver's Ray is up, before any shard: the one line, exit 143, and
    that Ray shut down (none of its processes left behind). "Up" is read from the run
    itself: job.json is written only after `ray.init` has returned and the cluster was asked
    for its resources (a precision and thread count given, so nothing is timed first), never
    from a guess at how long Ray takes to start on a loaded machine."""
    import signal
    import time

    from conftest import shard_files
    from test_signals import alive, descendants

    out = tmp_path / "o"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": short_tmp}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-m", "ray_job", "run", "--input", str(sample_path),
                             "--output", str(out), "--limit", "20", "--precision", "fp32",
                             "--threads", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while not (out / "job.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)                                      # job.json: ray.init returned
    started = descendants(proc.pid)
    assert started and proc.poll() is None, f"Ray never started: {proc.communicate()}"
    assert not shard_files(out / "shards")                     # before any shard
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
