"""Run directories written by release 0.1.0 (tests/data/release-0.1.0, how they were made is in
its README) still work: an interrupted one resumes and finalizes to what the release's own
uninterrupted run wrote, and a finished one finalizes again to the very same file."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from ray_job.cli import main
from ray_job.config import JobConfig
from ray_job.errors import UserError
from ray_job.pipeline import run

RELEASE = Path(__file__).resolve().parents[1] / "data" / "release-0.1.0"
BUCKET, KEY = "ray-embed-fixture", "papers-20.jsonl"


@pytest.fixture(scope="module")
def release_input(s3_endpoint) -> str:
    """The release's input, served where its runs read it (a URL: no local path in the run)."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    if BUCKET not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=BUCKET)
    client.upload_file(str(RELEASE / KEY), BUCKET, KEY)
    return f"s3://{BUCKET}/{KEY}"


def copy_run(name: str, tmp_path: Path) -> Path:
    out = tmp_path / name
    shutil.copytree(RELEASE / name, out)
    return out


def h5_content(path: Path) -> dict:
    with h5py.File(path, "r") as h5:
        return {"datasets": {name: h5[name][:] for name in h5},
                "attrs": {name: h5.attrs[name] for name in h5.attrs}}


def release_result() -> dict:
    return h5_content(RELEASE / "finished" / "embeddings.h5")


def test_an_interrupted_release_run_resumes_and_finalizes_like_its_uninterrupted_run(
        local_ray, release_input, tmp_path):
    out = copy_run("interrupted", tmp_path)
    report = run(JobConfig.of(inputs=(release_input,), output=str(out), precision="fp32",
                              block_bytes=6000, shard_rows=4))
    # 18 rows encoded (one of them a duplicate id, dropped when merging), 6 of them before
    assert report["resumed"] and report["rows_embedded_this_run"] == 18 - 6
    assert report["rows_embedded"] == 17 and report["rows_rejected"] == 3
    got, want = h5_content(out / "embeddings.h5"), release_result()
    assert got["attrs"].keys() == want["attrs"].keys()
    for name in want["attrs"]:
        if name != "versions":                  # the packages of wherever the test runs
            assert got["attrs"][name] == want["attrs"][name], name
    assert got["datasets"].keys() == want["datasets"].keys()
    for name, values in want["datasets"].items():
        if name == "embeddings":                # computed again here, maybe on another CPU
            np.testing.assert_allclose(got["datasets"][name], values, rtol=1e-5, atol=1e-6)
        else:
            assert np.array_equal(got["datasets"][name], values), name
    reasons = json.loads((out / "report.json").read_text())["rejected_by_reason"]
    assert reasons == {"bad_json": 1, "duplicate_id": 1, "missing_abstract": 1}


def test_a_release_run_asked_to_resume_with_other_settings_is_refused_before_anything(
        release_input, tmp_path, monkeypatch):
    """Refused before Ray starts (no session is opened) and before anything is written; the
    dead driver's lease was taken over, and is released."""
    out = copy_run("interrupted", tmp_path)
    (out / "lease.json").unlink()
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    monkeypatch.setattr("ray_job.pipeline.ray_session", None)        # calling it would fail
    with pytest.raises(UserError, match=r"other settings \(text: '\{title\}\{sep\}\{abstract\}' "
                                        r"-> '\{abstract\}'\)"):
        run(JobConfig.of(inputs=(release_input,), output=str(out), precision="fp32",
                         text="{abstract}"))
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_finished_release_run_finalizes_again_to_the_same_file(tmp_path, capsys):
    out = copy_run("finished", tmp_path)
    (out / "embeddings.h5").unlink()
    assert main(["finalize", str(out)]) == 0
    got, want = h5_content(out / "embeddings.h5"), release_result()
    assert got["attrs"] == want["attrs"]
    assert got["datasets"].keys() == want["datasets"].keys()
    for name, values in want["datasets"].items():
        assert np.array_equal(got["datasets"][name], values), name
    assert "wrote 17 embeddings" in capsys.readouterr().out
