"""Fencing: a driver writes only while it holds the run's lease. The lease's token (its
owner, a random id) travels with the run directory as plain data, to Ray workers too; every
commit (shards, rejects, reads, reuse lists, job.json, plan.json, embeddings.h5, report.json,
exports, uploads) first checks that lease.json still names it. A driver whose lease was taken
over (paused past it, then resumed) stops in one line before it writes again; locally and in
object storage alike."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pytest

from ray_job.config import JobConfig
from ray_job.encode.encoder import embedding_array
from ray_job.errors import LeaseLost
from ray_job.rundir.rundir import RunDir
from ray_job.rundir.sink import write_shard_block
from ray_job.rundir.stage import RunContext


def shard_table(keys):
    keys = np.asarray(keys, dtype=np.int64)
    return pa.table({"key": keys, "id": [f"p{k}" for k in keys],
                     "embedding": embedding_array(np.ones((len(keys), 4), np.float32)),
                     "text_hash": pa.array(keys.astype(np.uint64), pa.uint64()),
                     "n_tokens": np.full(len(keys), 3, np.int32),
                     "n_computed": np.full(len(keys), 3, np.int32)})


def take_over(run_dir: RunDir) -> str:
    """What a second driver does to a lease it found stale: its own record in lease.json."""
    owner = "second-driver"
    record = {"owner": owner, "host": "elsewhere", "pid": 1, "started": time.time(),
              "heartbeat": time.time()}
    run_dir.store.write_text("lease.json", json.dumps(record))
    return owner


def listing(run_dir: RunDir) -> dict[str, bytes]:
    found = run_dir.store.files.listing(run_dir.store.root, directory=True, recursive=True)
    return {e["name"]: run_dir.store.files.read(e["name"]) for e in found}


COMMITS = {
    "job.json": lambda r: r.write_job(_record(r)),
    "plan.json": lambda r: r.write_plan({"manifest": [], "block_bytes": 1, "limit": None,
                                         "units": []}),
    "report.json": lambda r: r.write_report({"rows": 1}),
    "reads": lambda r: r.reads.write_unit("00000-0000000000000", {"seen": 1}),
    "rejects": lambda r: r.rejects.write_unit("00000-0000000000000", [{"reason": "x", "key": 1}]),
    "row rejects": lambda r: r.rejects.write_rows("tokenize", [{"reason": "x", "key": 5}]),
    "duplicates": lambda r: r.rejects.write_duplicates([{"reason": "duplicate_id", "key": 2}]),
    "reuse": lambda r: r.reads.write_reuse("00000-0000000000000", _reuse(), {"reused": 1}),
    "shard": lambda r: r.shards.write(shard_table([7, 8])),
    "worker shard": lambda r: write_shard_block(shard_table([9]), RunContext(r.url, r.fence)),
    "embeddings.h5": lambda r: _result(r, "embeddings.h5"),
    "export": lambda r: _result(r, "parquet/part-00000.parquet"),
    "folder export": lambda r: _folder_result(r, "lance/papers.lance"),
    "put": lambda r: r.results.put(_local_file(r), "index/index.json"),
    "quarantine": lambda r: r.shards.quarantine("part-0000000000000001-1-00000000.arrow", "bad"),
    "fresh": lambda r: r.clear(),
}


def _record(run_dir):
    from ray_job.rundir.job import JobRecord, ModelInfo

    info = ModelInfo("m", "/m", "transformers", "/m", 8, "[SEP]", 0, 4, "cls", False)
    return JobRecord.new(JobConfig.of(output=run_dir.url), info, {"weights": "x"}, "cpu", "fp32")


def _reuse():
    from ray_job.rundir.reuse import reuse_table

    return reuse_table({"key": [1], "id": ["a"], "text_hash": [2], "previous_row": [0]})


def _result(run_dir, name):
    with run_dir.results.writer(name) as tmp:
        tmp.write_bytes(b"new")


def _folder_result(run_dir, name):
    with run_dir.results.folder_writer(name) as folder:
        folder.mkdir()
        (folder / "data.lance").write_bytes(b"new")


def _local_file(run_dir):
    path = run_dir.cache_dir / "local-index.json"
    path.write_text("{}")
    return path


def check_every_commit_is_fenced(run_dir: RunDir) -> None:
    run_dir.store.write_text("job.json", "old record")
    run_dir.store.sub("shards").write_bytes("part-0000000000000001-1-00000000.arrow", b"x")
    with run_dir.held() as held:
        assert held.fence and held.fence.token == json.loads(
            run_dir.store.read_text("lease.json"))["owner"]
        held.reads.write_unit("00000-0000000000000", {"seen": 1})    # holds it: written
        thief = take_over(run_dir)
        before = listing(run_dir)
        for what, commit in COMMITS.items():
            with pytest.raises(LeaseLost, match="lost the lease") as err:
                commit(held)
            assert "host elsewhere" in str(err.value), what
            assert listing(run_dir) == before, f"{what} was written without the lease"
    assert json.loads(run_dir.store.read_text("lease.json"))["owner"] == thief  # not released


def test_a_driver_that_lost_its_lease_commits_nothing_locally(tmp_path):
    check_every_commit_is_fenced(RunDir.at(tmp_path / "run"))


def test_a_driver_that_lost_its_lease_commits_nothing_in_object_storage(s3):
    check_every_commit_is_fenced(RunDir.at(f"s3://{s3.bucket}/runs/fenced"))


def test_an_upload_is_fenced_too(finished_run, tmp_path):
    import shutil

    from ray_job.publish.upload import upload

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    dest = tmp_path / "published"
    with RunDir.at(run).held() as held:
        take_over(RunDir.at(run))
        with pytest.raises(LeaseLost):
            upload(held, f"file://{dest}")
    assert not dest.exists() or not any(dest.rglob("*"))


def test_ray_embed_upload_takes_the_lease(finished_run, tmp_path, capsys):
    import shutil

    from ray_job.cli import main

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    with RunDir.at(run).held():
        assert main(["upload", str(run), f"file://{tmp_path / 'published'}"]) == 2
    assert "in use by another ray-embed driver" in capsys.readouterr().err
    assert not (tmp_path / "published").exists()


@pytest.mark.parametrize("when", ["before the shards", "before finalize"])
def test_a_run_whose_lease_is_taken_over_stops_in_one_line_and_writes_no_result(
        when, local_ray, sample_path, tmp_path, monkeypatch):
    from ray_job import finish, pipeline

    out = tmp_path / "out"
    module, target = ((pipeline, "write_shards") if when == "before the shards" else
                      (finish, "finalize"))
    real = getattr(module, target)

    def taken_over_first(*args, **kwargs):
        take_over(RunDir.at(out))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, target, taken_over_first)
    with pytest.raises(LeaseLost) as err:
        pipeline.run(JobConfig.of(inputs=(str(sample_path),), output=str(out), limit=12,
                                  precision="fp32"))
    message = str(err.value)
    assert "\n" not in message and f"{out}: this driver lost the lease" in message
    assert not (out / "embeddings.h5").exists() and not (out / "report.json").exists()
    if when == "before the shards":
        assert not list((out / "shards").glob("part-*.arrow"))
    assert json.loads((out / "lease.json").read_text())["owner"] == "second-driver"


@pytest.mark.slow
def test_a_paused_driver_whose_lease_was_taken_over_stops_when_resumed(sample_path, tmp_path):
    """The measured case: a driver SIGSTOPped past its lease while a second takes over, then
    SIGCONTed. It stops (exit 1, one line) before writing again; the second one finishes."""
    import tempfile

    out = tmp_path / "out"
    env = {**os.environ, "RAY_TMPDIR": tempfile.mkdtemp(prefix="ray-fence-")}  # a short path
    cmd = [sys.executable, "-m", "ray_job", "run", "--input", str(sample_path), "--output",
           str(out), "--limit", "200", "--precision", "fp32", "--shard-rows", "16"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.time() + 240
    while not list((out / "shards").glob("part-*.arrow")) and time.time() < deadline:
        assert first.poll() is None, first.communicate()[1]
        time.sleep(0.2)
    first.send_signal(signal.SIGSTOP)
    (out / "lease.json").unlink()          # stale: what the second driver finds and removes
    second = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    while not (out / "lease.json").exists() and second.poll() is None:
        time.sleep(0.05)
    first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 1, err
    assert "this driver lost the lease" in err.strip().splitlines()[-1]
    out2, err2 = second.communicate(timeout=300)
    assert second.returncode == 0, err2
    assert "wrote 200 embeddings" in out2


def test_a_late_shard_of_a_stopped_driver_is_harmless_or_set_aside(tmp_path):
    """What the check-then-write window can let through, one shard landing after a takeover,
    does no harm: the same block is the same file; another block over the same keys is
    counted once; a shard of a run with other settings (the new driver used --fresh with
    another model) is recognised by its config hash and quarantined, its rows recomputed."""
    from ray_job.finalize.merge import MergeSpec, finalize
    from ray_job.rundir.shards import CorruptShard

    run_dir = RunDir.at(tmp_path)
    first = run_dir.shards.write(shard_table([1, 2, 3]), "cfg-a")
    data = (tmp_path / "shards" / first).read_bytes()
    assert run_dir.shards.write(shard_table([1, 2, 3]), "cfg-a") == first       # the late one
    assert (tmp_path / "shards" / first).read_bytes() == data
    run_dir.shards.write(shard_table([3, 4]), "cfg-a")           # another block, key 3 again
    spec = MergeSpec({"config_hash": "cfg-a"})
    assert finalize(run_dir, spec).count == 4
    late = run_dir.shards.write(shard_table([5]), "cfg-b")
    with pytest.raises(CorruptShard, match=r"other settings \(config hash cfg-b"):
        finalize(run_dir, spec)
    assert (tmp_path / "shards" / "corrupt" / late).exists()
    assert finalize(run_dir, spec).count == 4


def _paused_in_the_window(run_dir: RunDir, monkeypatch):
    """Make the next commit of a result land just after another driver took the lease over:
    the check passes, then (as if this driver were stopped there) the takeover, then the
    rename or PUT."""
    from ray_job.rundir import fence

    real_check = fence.Fence.check

    def check_then_pause(self):
        real_check(self)
        monkeypatch.setattr(fence.Fence, "check", real_check)
        take_over(RunDir.at(run_dir.url))

    monkeypatch.setattr(fence.Fence, "check", check_then_pause)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_result_that_lands_in_the_window_is_named_in_the_one_line(where, tmp_path, s3,
                                                                     monkeypatch):
    """The documented window (fence.py): a result renamed between the check and a takeover
    lands, but the driver checks again right after and its one line names the file and says
    to finalize again; report.json, the file that makes a run finished, is not written."""
    url = str(tmp_path / "run") if where == "local" else f"s3://{s3.bucket}/runs/window-{where}"
    with RunDir.at(url).held() as held:
        _paused_in_the_window(held, monkeypatch)
        with pytest.raises(LeaseLost) as err:
            _result(held, "embeddings.h5")
        message = str(err.value)
        assert "\n" not in message and "host elsewhere" in message
        assert "its embeddings.h5 was written as the lease changed hands" in message
        assert f"ray-embed finalize {url}" in message
        with pytest.raises(LeaseLost):
            held.write_report({"rows": 1})
    assert RunDir.at(url).store.read_bytes("embeddings.h5") == b"new"
    assert not RunDir.at(url).store.exists("report.json")
