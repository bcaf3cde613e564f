"""The driver's start (issue 21): it imports neither torch nor transformers before it describes
the model, describes it in a background thread while the main thread starts an embedded Ray
(session/start.py), and hears of each shard as it is written. Real Ray, in child processes where a test needs a Ray
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


@pytest.mark.slow   # default cover: every pipeline test plans beside Ray and adopts it
                    # (test_end_to_end); the plan's order: the test after this one
def test_the_plan_runs_beside_ray_starting_in_the_main_thread_and_a_stray_ray_is_shut_down():
    out = child("""
        import threading, ray
        from ray_job.config import JobConfig
        from ray_job.session import plan_beside_ray, ray_session, starting_ray

        def plan(x):
            return x, threading.current_thread() is threading.main_thread()

        cfg = JobConfig.of()
        with starting_ray(cfg) as starting:
            assert plan_beside_ray(starting, plan, 7) == (7, False)
            assert ray.is_initialized()                  # started here, in the main thread
            with ray_session(cfg, starting):             # adopted: shut down by the session
                assert ray.get(ray.put(3)) == 3
            assert not ray.is_initialized()
        with starting_ray(cfg) as starting:              # refused before its session:
            plan_beside_ray(starting, plan, 1)
        assert not ray.is_initialized()                  # shut down on the way out
        print("ok")
    """)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


def test_the_plans_refusal_comes_first_and_ray_failing_to_start_is_raised_after_the_plan():
    out = child("""
        import time
        from ray_job.errors import UserError
        from ray_job.session.start import RayStart

        def refuse():
            time.sleep(0.5)
            raise UserError("no such model")

        def fail():
            raise RuntimeError("ray did not start")

        try:
            RayStart(fail).beside(refuse)
        except UserError as exc:
            print("first:", exc)
        done = []
        try:
            RayStart(fail).beside(lambda: done.append(time.sleep(0.5)))
        except RuntimeError as exc:
            print("then:", exc, "after the plan:", done == [None])
    """, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "first: no such model" in out.stdout
    assert "then: ray did not start after the plan: True" in out.stdout


@pytest.mark.slow   # default cover: test_a_signal_right_after_ray_started_stops_cleanly (a
                    # real driver SIGTERMed in the same window: one line, exit 143, no dump)
def test_a_signal_after_ray_is_up_but_before_the_plan_ends_is_the_drivers_not_rays():
    """Ray's C++ handler (13 lines of `*** SIGTERM received ... PC: @`) is replaced right after
    `ray.init`, in the main thread, while the planning still runs."""
    out = child("""
        import os, signal, time, ray
        from ray_job.config import JobConfig
        from ray_job.errors import Stopped
        from ray_job.session import plan_beside_ray, starting_ray
        from ray_job.session.signals import stop_on_signals

        def plan():
            while not ray.is_initialized():
                time.sleep(0.05)
            time.sleep(1)                                # Ray up, the handlers put back
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(2)
            finished.append(True)                        # the stop waited for the plan

        finished = []

        with stop_on_signals():
            try:
                with starting_ray(JobConfig.of()) as starting:
                    plan_beside_ray(starting, plan)
            except Stopped as exc:
                print("stopped", exc, "ray up after:", ray.is_initialized(), finished)
    """)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "stopped SIGTERM ray up after: False [True]" in out.stdout
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
    from ray_job.rundir.rundir import RunDir
    from ray_job.rundir.tally import ShardTally

    ds = Written([pa.table({"shard": ["a", "b"], "rows": [3, 4], "first_key": [0, 9],
                            "last_key": [8, 20]})])
    tally, read = ShardTally(), []
    write_shards(ds, RunDir(str(tmp_path)), tally, read=lambda *shard: read.append(shard))
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
    """SIGTERM once the driver's Ray is up, before any shard (the model described beside
    Ray's start): the one line, exit 143, and that Ray shut down (none of its processes left
    behind). (A signal inside `ray.init` itself, before it returns, still meets Ray's own
    handler, as it always did: the driver's are put back the moment it returns.)"""
    import signal
    import time

    from conftest import shard_files
    from test_signals import alive, descendants

    out = tmp_path / "o"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": short_tmp}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-m", "ray_job", "run", "--input", str(sample_path),
                             "--output", str(out), "--limit", "20"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    driver_logs = Path(short_tmp, "ray", "session_latest", "logs")
    while not list(driver_logs.glob("python-core-driver-*")) and time.time() < deadline \
            and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(1.5)                                           # ray.init has returned
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
