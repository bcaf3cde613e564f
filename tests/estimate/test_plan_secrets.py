"""Secrets never written, on the input-identity path: the manifest and plan.json hold the
redacted form of every URL; an input's identity is its URL without its signature (plus size,
version, fingerprint), so a re-signed URL resumes as promised; read tasks still open the URL
as given."""
from __future__ import annotations

import json
import os

import pytest

from ray_job.config import JobConfig
from ray_job.read.inputs import SqlSpec, resolve_inputs
from ray_job.read.manifest import build_manifest
from ray_job.read.plan import ReadPlan, check_resume, resolve_plan
from ray_job.read.readers import read_unit
from ray_job.read.resume import unit_fingerprint

SECRET = "s3cr3t"


def signed_copies(tmp_path, sample_records, n=30):
    """One file under two pre-signed-looking names (hard links: the same bytes, size and
    mtime), read through file:// URLs whose query is a signature."""
    folder = tmp_path / "data"
    folder.mkdir()
    real = folder / "in.jsonl"
    real.write_text("".join(json.dumps({"id": f"p{i}", "title": r["title"],
                                        "abstract": r["abstract"]}) + "\n"
                            for i, r in enumerate(sample_records[:n])))
    urls = []
    for sig in ("AAAA", "BBBB"):
        name = folder / f"in.jsonl?X-Amz-Signature={SECRET}{sig}"
        os.link(real, name)
        urls.append(f"file://{name}")
    return urls


def test_the_manifest_and_plan_hold_redacted_urls_and_a_re_signed_url_is_the_same_input(
        tmp_path, sample_records):
    first, resigned = signed_copies(tmp_path, sample_records)
    files = resolve_inputs([first])
    manifest = build_manifest(files)
    plan = resolve_plan(None, files, manifest, 1024, None, SqlSpec("id"))
    stored = json.dumps(plan.to_dict())
    assert SECRET not in stored and "X-Amz-Signature=***" in stored
    assert len(plan.units) > 3 and all(SECRET in u.path for u in plan.units)   # in memory: real
    again = resolve_inputs([resigned])
    new_manifest = build_manifest(again)
    frozen = ReadPlan.from_dict(json.loads(stored))
    check_resume(frozen, new_manifest, None, "out")            # not refused as a changed input
    resumed = resolve_plan(frozen, again, new_manifest, 1024, None, SqlSpec("id"))
    assert [u.path for u in resumed.units] == [resigned] * len(plan.units)
    assert [unit_fingerprint(u) for u in resumed.units] == [unit_fingerprint(u) for u in plan.units]
    rows = [item for u in resumed.units for item in read_unit(u)]
    assert len(rows) == 30


# slow: a whole run and its resume (~15 s); re-signed identity in the default suite: the
# manifest test above
@pytest.mark.slow
def test_a_re_signed_url_resumes_the_run_and_no_file_holds_a_signature(local_ray, tmp_path,
                                                                      sample_records):
    from ray_job.pipeline import run

    first, resigned = signed_copies(tmp_path, sample_records)
    out = tmp_path / "out"
    common = dict(output=str(out), precision="fp32", block_bytes=4096)
    run(JobConfig.of(inputs=(first,), **common))
    for folder in ("shards", "reads"):                # the units must be read again
        for path in (out / folder).iterdir():
            path.unlink()
    report = run(JobConfig.of(inputs=(resigned,), **common))
    assert report["rows_embedded"] == 30 and report["rows_embedded_this_run"] == 30
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert "X-Amz-Signature=***" in (out / "plan.json").read_text()
