"""Publishing to the Hugging Face Hub (hf://datasets/OWNER/NAME) through the real
huggingface_hub client, against tests/hub_server.py: a local server speaking the Hub API."""
from __future__ import annotations

import os

os.environ["HF_HUB_DISABLE_XET"] = "1"      # before huggingface_hub is imported (see hub_server)

import subprocess
import sys
from pathlib import Path

import hub_server as hub_server_module
import numpy as np
import pytest
from hub_server import HubServer, fake_xet_cas, point_client_at

from ray_job.config import JobConfig
from ray_job.errors import UserError
from ray_job.pipeline import run
from ray_job.publish.upload import upload

hub_server = hub_server_module.hub_server
PUBLISHED = ["README.md", "embeddings.h5", "job.json", "parquet/part-00000.parquet", "report.json"]


def test_upload_to_the_hub_then_a_rerun_uploads_nothing(finished_run, hub_server):
    result = upload(finished_run, "hf://datasets/team/arxiv-embeddings/runs/w47")
    assert sorted(result.uploaded) == PUBLISHED
    files = hub_server.files("team/arxiv-embeddings")
    for name in PUBLISHED[1:]:
        assert files[f"runs/w47/{name}"] == (finished_run / name).read_bytes(), name
    card = files["runs/w47/README.md"].decode()
    assert "all-MiniLM-L6-v2" in card and "| count | 20 |" in card
    # the HDF5 file took the large-file (LFS) path, and everything went in one commit
    assert hub_server.lfs_bytes_uploaded() >= (finished_run / "embeddings.h5").stat().st_size
    commits = hub_server.commits("team/arxiv-embeddings")
    assert len(commits) == 2                          # the repo's initial commit + ours
    puts, commit_count = len(hub_server.requests_of("lfs_upload")), len(commits)

    again = upload(finished_run, "hf://datasets/team/arxiv-embeddings/runs/w47")
    assert again.uploaded == [] and sorted(again.unchanged) == PUBLISHED
    assert len(hub_server.commits("team/arxiv-embeddings")) == commit_count
    assert len(hub_server.requests_of("lfs_upload")) == puts


def test_publishing_through_xet_the_transfer_users_get(finished_run, monkeypatch):
    """With hf_xet installed (the default) and a Hub that stores with Xet, the client uploads
    through hf_xet and commits LFS pointers: ray-embed publishes the same files, and a re-run
    finds them unchanged. Only the Xet storage service is a stand-in (fake_xet_cas)."""
    import hf_xet  # noqa: F401  (installed with huggingface_hub, as for users)

    with HubServer(xet=True) as server:
        point_client_at(server, monkeypatch, xet=True)
        fake_xet_cas(server, monkeypatch)
        result = upload(finished_run, "hf://datasets/team/xet-stored")
        assert sorted(result.uploaded) == PUBLISHED
        batch = server.requests_of("lfs_batch")
        assert batch and all(b'"xet"' in r.body for r in batch)          # offered and taken
        assert server.requests_of("xet_token") and not server.requests_of("lfs_upload")
        h5_size = (finished_run / "embeddings.h5").stat().st_size
        assert h5_size in server.xet_uploads
        files = server.files("team/xet-stored")
        for name in PUBLISHED[1:]:
            assert files[name] == (finished_run / name).read_bytes(), name
        again = upload(finished_run, "hf://datasets/team/xet-stored")
        assert again.uploaded == [] and len(server.commits("team/xet-stored")) == 2
        assert not server.errors


def test_with_xet_installed_a_hub_without_xet_gets_the_lfs_path(finished_run, monkeypatch):
    with HubServer() as server:
        point_client_at(server, monkeypatch, xet=True)
        result = upload(finished_run, "hf://datasets/team/lfs-stored")
        assert sorted(result.uploaded) == PUBLISHED
        assert all(b'"xet"' in r.body for r in server.requests_of("lfs_batch"))
        assert server.lfs_bytes_uploaded() >= (finished_run / "embeddings.h5").stat().st_size
        assert server.files("team/lfs-stored")["embeddings.h5"] == (
            finished_run / "embeddings.h5").read_bytes()
        assert not server.errors


def test_a_failing_hub_is_retried_and_a_lost_answer_does_not_commit_twice(finished_run, hub_server):
    hub_server.fail_next(2, "commit", status=503)
    hub_server.fail_next(1, "preupload", status=500)
    result = upload(finished_run, "hf://datasets/team/flaky")
    assert sorted(result.uploaded) == PUBLISHED
    assert len(hub_server.commits("team/flaky")) == 2
    assert len(hub_server.requests_of("commit")) == 3

    # the commit lands but its answer is lost: the retry finds nothing missing
    (finished_run / "README.md").unlink()             # regenerated identically by upload
    hub_server.drop_next(1, "commit", apply=True)
    other = upload(finished_run, "hf://datasets/team/flaky2")
    assert sorted(other.uploaded) == PUBLISHED
    assert len(hub_server.commits("team/flaky2")) == 2


def test_a_hub_that_refuses_the_token_is_a_one_line_error(finished_run, monkeypatch):
    with HubServer(token="the-right-token") as server:
        point_client_at(server, monkeypatch)
        monkeypatch.setenv("HF_TOKEN", "a-wrong-token")
        with pytest.raises(UserError, match="refused: 401") as err:
            upload(finished_run, "hf://datasets/team/private")
        assert "a-wrong-token" not in str(err.value) and "\n" not in str(err.value)
        assert not server.has_repo("team/private")


def test_a_bad_hub_url_is_refused(finished_run):
    with pytest.raises(UserError, match="expected hf://datasets/OWNER/NAME"):
        upload(finished_run, "hf://team/not-a-dataset-url")


def test_hub_in_and_out_and_the_token_is_never_written(sample_path, tmp_path):
    """The whole job in a subprocess, as a user runs it: papers read from a private Hub
    dataset, vectors published to another, HF_TOKEN in the environment only. Afterwards the
    token appears in no output, no file of the run directory, no published file and no file
    of the Ray session (logs, job metadata)."""
    token = "hf_SeCrEt" + os.urandom(8).hex()
    ray_tmp = Path(f"/tmp/rt{os.urandom(3).hex()}")
    with HubServer(token=token) as server:
        server.create_repo("team/papers", private=True)
        server.add_file("team/papers", "data/sample.jsonl",
                        b"".join(sample_path.read_bytes().splitlines(keepends=True)[:30]))
        env = {**os.environ, "HF_ENDPOINT": server.url, "HF_TOKEN": token,
               "HF_HUB_DISABLE_XET": "1", "RAY_TMPDIR": str(ray_tmp)}
        out = tmp_path / "run"
        proc = subprocess.run(
            [sys.executable, "-m", "ray_job", "run",
             "--input", "hf://datasets/team/papers/data/sample.jsonl",
             "--output", str(out), "--export", "parquet",
             "--upload", "hf://datasets/team/emb"],
            env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        published = server.files("team/emb")
        authorized = [r for r in server.requests if r.headers.get("authorization")]
    try:
        assert "wrote 30 embeddings" in proc.stdout
        assert published["embeddings.h5"] == (out / "embeddings.h5").read_bytes()
        assert {r.headers["authorization"] for r in authorized} == {f"Bearer {token}"}
        assert token not in proc.stdout + proc.stderr
        secret = token.encode()
        leaks = [str(p) for root in (out, ray_tmp) for p in Path(root).rglob("*")
                 if p.is_file() and not p.is_symlink() and secret in p.read_bytes()]
        leaks += [name for name, data in published.items() if secret in data]
        assert leaks == []
        assert any(ray_tmp.rglob("*.log")), "the Ray session's files were not where expected"
    finally:
        subprocess.run(["rm", "-rf", str(ray_tmp)])


# slow: ~10 s; --upload-every in the default suite: test_publish (fsspec)
@pytest.mark.slow
def test_upload_every_commits_shards_to_the_hub_during_the_run(local_ray, sample_path, tmp_path,
                                                               hub_server):
    run(JobConfig.of(inputs=(str(sample_path),), output=str(tmp_path / "o"), limit=60,
                  block_bytes=20_000, shard_rows=16, upload="hf://datasets/team/live",
                  upload_every=1))
    local = sorted(p.name for p in (tmp_path / "o" / "shards").glob("part-*.arrow"))
    files = hub_server.files("team/live")
    assert len(local) > 1
    assert sorted(n[len("shards/"):] for n in files if n.startswith("shards/")) == local
    assert files["embeddings.h5"] == (tmp_path / "o" / "embeddings.h5").read_bytes()
    shard_commits = [c for c in hub_server.commits("team/live")
                     if any(p.startswith("shards/") for p in c.written)]
    assert len(shard_commits) >= 1


def test_the_hub_and_datasets_read_a_published_run(finished_run, hub_server, tmp_path):
    """The card declares the Parquet files (configs:), so `datasets.load_dataset` through the
    Hub API sees id + embedding rows, and nothing else in the repo is taken for data."""
    import datasets
    import h5py

    upload(finished_run, "hf://datasets/team/viewer")
    card = hub_server.files("team/viewer")["README.md"].decode()
    assert 'configs:\n- config_name: default\n  data_files:\n  - split: train\n    path: ' \
           '"parquet/part-*.parquet"\n' in card
    papers = datasets.load_dataset("team/viewer", split="train", cache_dir=str(tmp_path))
    with h5py.File(finished_run / "embeddings.h5") as h5:
        ids = [i.decode() for i in h5["ids"][:]]
        vectors = h5["embeddings"][:]
    assert papers.num_rows == 20 and papers.column_names == ["id", "embedding"]
    assert papers["id"] == ids
    assert np.array_equal(np.array(papers["embedding"], dtype=np.float32), vectors)
