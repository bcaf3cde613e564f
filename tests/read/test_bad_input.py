"""Bad input never stops the run and never loses a row silently: rejects with reasons."""
from __future__ import annotations

import gzip
import json

import h5py
import pytest


@pytest.fixture
def messy_dir(tmp_path, sample_records):
    good = sample_records[:4]
    huge = dict(sample_records[4], abstract="quantum " * 131_072)          # a 1 MB abstract
    lines = [json.dumps(good[0]).encode(), b"{not json", b"",
             json.dumps({**good[1], "title": None}).encode(),
             json.dumps({**good[1], "id": "x-empty", "abstract": "   "}).encode(),
             json.dumps({"id": "x-title-only", "title": "Only a title"}).encode(),
             json.dumps({**good[1], "id": "x-number", "title": 42}).encode(),
             b'{"id": "x-utf8", "title": "caf\xe9", "abstract": "x"}',
             json.dumps(huge).encode(), json.dumps(good[2]).encode(),
             json.dumps(good[0]).encode(),                                   # duplicate id
             json.dumps(good[3]).encode()]
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (d / "b-empty.jsonl").write_bytes(b"")
    data = gzip.compress("".join(json.dumps(r) + "\n" for r in sample_records[10:60]).encode())
    (d / "c-cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    return d


def test_every_bad_row_is_rejected_with_a_reason_and_the_run_goes_on(ray_embed, messy_dir,
                                                                     tmp_path, sample_records):
    """With --strict: the run goes to the end, then exits 1 with a summary of the rejects."""
    result = ray_embed("run", "--input", str(messy_dir), "--output", "o", "--strict", cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "ray-embed: failed (--strict): 9 rows rejected: 1 bad_json" in result.stderr
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    reasons = report["rejected_by_reason"]
    assert reasons == {"bad_json": 1, "bad_utf8": 1, "bad_type_title": 1, "blank_line": 1,
                       "duplicate_id": 1, "missing_abstract": 2, "missing_title": 1,
                       "truncated_file": 1}
    with h5py.File(tmp_path / "o" / "embeddings.h5") as h5:
        ids = [i.decode() for i in h5["ids"][:]]
    from_gz = [i for i in ids if i in {r["id"] for r in sample_records[10:60]}]
    assert 0 < len(from_gz) < 50                                 # what was readable of the .gz
    assert ids[:4] == [sample_records[i]["id"] for i in (0, 4, 2, 3)]   # file order, 1 MB one kept
    assert report["rows_read"] == report["rows_embedded"] + report["rows_rejected"]
    rejects = [json.loads(line) for p in (tmp_path / "o" / "rejects").glob("*.jsonl")
               for line in p.read_text().splitlines()]
    assert all(r["reason"] for r in rejects)
    # no id where the line is not JSON; the second copy's id for a duplicate
    assert {r.get("id") for r in rejects} >= {None, "x-empty", "x-title-only", "x-number",
                                              sample_records[0]["id"]}


# slow: ~10 s; the reject reasons stay in the default suite
@pytest.mark.slow
def test_title_only_papers_can_be_embedded_by_setting(ray_embed, messy_dir, tmp_path):
    result = ray_embed("run", "--input", str(messy_dir / "a.jsonl"), "--output", "o",
                       "--on-missing-field", "empty", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    with h5py.File(tmp_path / "o" / "embeddings.h5") as h5:
        ids = {i.decode() for i in h5["ids"][:]}
    assert "x-title-only" in ids and "x-empty" in ids
    status = ray_embed("status", "o", cwd=tmp_path)
    assert status.returncode == 0
    assert "finalized      yes" in status.stdout and "rejected       " in status.stdout
