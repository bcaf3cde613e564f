"""Inputs verified while they are read: every read task checks its file's identity (size and
version: mtime locally, the store's ETag or version) against the frozen plan's manifest before
and after reading its range. A file rewritten in place mid-run (same size) fails the run in one
line naming it; nothing is silently missing. JSONL ranges, compressed files, JSON arrays,
Parquet row ranges and DuckDB key ranges alike."""
from __future__ import annotations

import gzip
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ray_job.config import JobConfig
from ray_job.errors import DataError, InputChanged, UserError
from ray_job.read.inputs import SqlSpec, plan_units, resolve_inputs
from ray_job.read.manifest import build_manifest
from ray_job.read.readers import read_unit


def write_jsonl(path, records):
    path.write_bytes("".join(json.dumps(r) + "\n" for r in records).encode())
    return path


def rewrite_in_place(path, data: bytes | None = None) -> None:
    """New bytes of the same size written into the file itself (not a rename); its mtime
    moved on by a second, as any later write's would be (a test writes within one clock tick)."""
    old = path.read_bytes()
    data = data if data is not None else old[::-1]
    assert len(data) == len(old)
    before = path.stat()
    with open(path, "r+b") as fh:
        fh.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))


def planned(path, block_bytes=1 << 20, sql=None):
    files = resolve_inputs([str(path)])
    return plan_units(files, block_bytes, None, sql), build_manifest(files)


def papers(sample_records, n):
    return [{"id": f"p{i}", "title": r["title"], "abstract": r["abstract"]}
            for i, r in enumerate(sample_records[:n])]


def parquet_file(path, sample_records):
    pq.write_table(pa.Table.from_pylist(papers(sample_records, 60)), path, row_group_size=20)
    return path


def gz_file(path, sample_records):
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n"
                                           for r in papers(sample_records, 60)).encode()))
    return path


def duckdb_file(path, sample_records):
    import duckdb

    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t (id BIGINT, title VARCHAR, abstract VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)",
                    [(i, r["title"], r["abstract"]) for i, r in enumerate(sample_records[:60])])
    con.close()
    return path


def array_file(path, sample_records):
    path.write_text(json.dumps(papers(sample_records, 60)))
    return path


KINDS = {"jsonl": lambda p, s: write_jsonl(p, papers(s, 60)), "jsonl.gz": gz_file,
         "parquet": parquet_file, "array.json": array_file}


def test_a_file_unchanged_since_the_plan_reads_as_before(tmp_path, sample_records):
    path = write_jsonl(tmp_path / "in.jsonl", papers(sample_records, 60))
    units, manifest = planned(path, 8192)
    assert len(units) > 2
    plain = [item for u in units for item in read_unit(u)]
    checked = [item for u in units for item in read_unit(u, expected=manifest[u.file_index])]
    assert checked == plain and len(plain) == 60


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_file_changed_since_the_plan_is_refused_before_a_row_is_read(kind, tmp_path,
                                                                      sample_records):
    path = KINDS[kind](tmp_path / f"in.{kind}", sample_records)
    units, manifest = planned(path)
    rewrite_in_place(path)
    with pytest.raises(InputChanged, match=rf"{path.name} changed while the run read it "
                                           rf"\(version\)") as err:
        next(read_unit(units[0], expected=manifest[0]))
    assert "\n" not in str(err.value) and "--fresh" in str(err.value)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_file_rewritten_in_place_while_a_unit_is_read_fails_that_unit(kind, tmp_path,
                                                                       sample_records):
    """The measured case: the file rewritten (same size) while its unit was being read. Rows
    read before the change came out; the unit then fails instead of ending as if whole."""
    path = KINDS[kind](tmp_path / f"in.{kind}", sample_records)
    units, manifest = planned(path)
    reading = read_unit(units[0], expected=manifest[0])
    next(reading)
    rewrite_in_place(path)
    with pytest.raises(InputChanged, match=path.name):
        list(reading)


def test_a_duckdb_key_range_checks_its_file_too(tmp_path, sample_records):
    path = duckdb_file(tmp_path / "papers.duckdb", sample_records)
    units, manifest = planned(path, sql=SqlSpec("id", table="t"))
    assert len(list(read_unit(units[0], expected=manifest[0]))) == 60
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 1_000_000_000))   # rewritten, say
    with pytest.raises(InputChanged, match="papers.duckdb"):
        list(read_unit(units[0], expected=manifest[0]))


def test_a_shorter_or_missing_file_is_named_too(tmp_path, sample_records):
    path = write_jsonl(tmp_path / "in.jsonl", papers(sample_records, 30))
    units, manifest = planned(path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputChanged, match=r"in.jsonl changed while the run read it \(size"):
        list(read_unit(units[0], expected=manifest[0]))
    path.unlink()
    with pytest.raises(InputChanged, match="in.jsonl disappeared while the run read it"):
        list(read_unit(units[0], expected=manifest[0]))


def test_without_a_version_the_head_and_tail_fingerprint_is_checked(tmp_path, sample_records,
                                                                   monkeypatch):
    """A store that gives no version (a plain HTTP server without ETag): size alone would pass
    a same-size rewrite, so the manifest's fingerprint of the head and tail is compared too."""
    from ray_job.read import manifest as manifest_module

    monkeypatch.setattr(manifest_module, "identity_of", lambda p: (os.path.getsize(p), ""))
    path = write_jsonl(tmp_path / "in.jsonl", papers(sample_records, 30))
    units, manifest = planned(path)
    entry = {**manifest[0], "version": ""}
    assert len(list(read_unit(units[0], expected=entry))) == 30
    rewrite_in_place(path)
    with pytest.raises(InputChanged, match=r"\(fingerprint\)"):
        list(read_unit(units[0], expected=entry))


def test_a_file_rewritten_during_a_run_fails_the_run_in_one_line(local_ray, tmp_path,
                                                                sample_records, monkeypatch):
    """The input changes after the driver froze the plan and before its units are read: the
    run fails naming the file (no traceback, no embeddings.h5, no row silently missing), and
    the same command then refuses the changed input in one line."""
    from ray_job import pipeline

    path = write_jsonl(tmp_path / "in.jsonl", papers(sample_records, 40))
    real_plan = pipeline.plan_job

    def plan_then_change(cfg, run_dir):
        found = real_plan(cfg, run_dir)
        rewrite_in_place(path, path.read_bytes().replace(b'"p1"', b'"q1"'))
        return found

    monkeypatch.setattr(pipeline, "plan_job", plan_then_change)
    cfg = JobConfig.of(inputs=(str(path),), output=str(tmp_path / "out"), precision="fp32",
                       block_bytes=8192)
    with pytest.raises(DataError) as err:
        pipeline.run(cfg)
    message = str(err.value)
    assert isinstance(err.value, InputChanged), message
    assert f"{path} changed while the run read it" in message and "\n" not in message
    assert not (tmp_path / "out" / "embeddings.h5").exists()
    assert not (tmp_path / "out" / "report.json").exists()
    monkeypatch.setattr(pipeline, "plan_job", real_plan)
    with pytest.raises(UserError, match=r"inputs of .* changed since it started"):
        pipeline.run(cfg)


def test_an_object_replaced_in_the_store_is_named_by_its_etag(s3, tmp_path, sample_records):
    """In S3 the version is the ETag: an object PUT again (same size) before or while its unit
    is read fails the unit (s3fs's ranged reads are also conditional on the ETag seen at open,
    If-Match; the check after the read names the file either way)."""
    data = "".join(json.dumps(r) + "\n" for r in papers(sample_records, 60)).encode()
    s3.put_object(Bucket=s3.bucket, Key="in/papers.jsonl", Body=data)
    url = f"s3://{s3.bucket}/in/papers.jsonl"
    units, manifest = planned(url, 4096)
    assert manifest[0]["version"]                                    # the ETag
    reading = read_unit(units[0], expected=manifest[0])
    next(reading)
    s3.put_object(Bucket=s3.bucket, Key="in/papers.jsonl", Body=data[::-1])
    with pytest.raises(InputChanged,
                       match=r"papers.jsonl changed while the run read it \(version\)"):
        list(reading)
    with pytest.raises(InputChanged, match=r"\(version\)"):
        next(read_unit(units[1], expected=manifest[0]))
