"""Inputs given as fsspec URLs (s3://, https://, file://, hf://) read exactly like local files."""
from __future__ import annotations

import gzip
import os
import re
import shutil
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from http_ranges import RangeFileHandler

from ray_job.config import JobConfig, absolute_inputs
from ray_job.errors import UserError
from ray_job.read.inputs import SqlSpec, plan_units, resolve_inputs
from ray_job.read.keys import make_key
from ray_job.read.readers import read_unit
from ray_job.storage import remote_files
from ray_job.storage.files import Files

SAMPLE_NAMES = ("sample.jsonl", "sample.jsonl.gz", "sample.parquet")


def keyed_items(files, block_bytes, limit=None, **plan_options):
    """(key, record) of every row, in unit order, as the source stage keys them."""
    units = plan_units(files, block_bytes, limit, **plan_options)
    return [(make_key(u.file_index, pos), item) for u in units for pos, item in read_unit(u)]


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory, sample_path, sample_records) -> Path:
    """The arXiv sample as plain JSONL, gzip JSONL and Parquet (small row groups)."""
    root = tmp_path_factory.mktemp("samples")
    shutil.copyfile(sample_path, root / "sample.jsonl")
    (root / "sample.jsonl.gz").write_bytes(gzip.compress(sample_path.read_bytes()))
    table = pa.Table.from_pylist([{"id": r["id"], "title": r["title"], "abstract": r["abstract"]}
                                  for r in sample_records])
    pq.write_table(table, root / "sample.parquet", row_group_size=128)
    return root


def upload(s3, local: Path, key: str) -> str:
    s3.upload_file(str(local), s3.bucket, key)
    return f"s3://{s3.bucket}/{key}"


@pytest.fixture
def small_units(monkeypatch):
    """Several units per Parquet file too (the JSONL block size is passed per call)."""
    monkeypatch.setattr("ray_job.read.inputs.PARQUET_ROWS_PER_UNIT", 300)


# ---- s3:// ------------------------------------------------------------------------------

def test_s3_files_read_exactly_like_the_local_files(s3, sample_dir, small_units):
    local = [str(sample_dir / name) for name in SAMPLE_NAMES]
    urls = [upload(s3, sample_dir / name, f"data/{name}") for name in SAMPLE_NAMES]
    files = resolve_inputs(urls)
    assert [f.path for f in files] == urls
    assert [f.size for f in files] == [f.size for f in resolve_inputs(local)]
    units = plan_units(files, 200_000, None)
    assert [sum(u.file_index == i for u in units) for i in range(3)] == [8, 1, 4]
    remote_items = keyed_items(files, 200_000)
    assert len(remote_items) == 3000
    assert remote_items == keyed_items(resolve_inputs(local), 200_000)
    for limit in (777, 2500):  # limits end inside the plain JSONL / inside the Parquet file
        remote_items = keyed_items(files, 200_000, limit)
        assert len(remote_items) == limit
        assert remote_items == keyed_items(resolve_inputs(local), 200_000, limit)


def test_s3_directory_and_glob_resolve_to_sorted_known_files(s3, sample_dir):
    for name in reversed(SAMPLE_NAMES):
        upload(s3, sample_dir / name, f"data/{name}")
    s3.put_object(Bucket=s3.bucket, Key="data/README.txt", Body=b"not an input")
    s3.put_object(Bucket=s3.bucket, Key="data/nested/other.jsonl", Body=b'{"id": "x"}\n')
    root = f"s3://{s3.bucket}/data"
    expected = [f"{root}/{name}" for name in SAMPLE_NAMES]
    assert [f.path for f in resolve_inputs([root + "/"])] == expected
    assert [f.path for f in resolve_inputs([root])] == expected
    globbed = resolve_inputs([f"{root}/*.jsonl*"])
    assert [(f.path, f.format, f.compression) for f in globbed] == [
        (expected[0], "jsonl", None), (expected[1], "jsonl", "gzip")]
    assert [f.index for f in resolve_inputs([f"{root}/*.parquet", root + "/"])] == [0, 1, 2, 3]


def test_missing_or_unreadable_urls_are_one_line_user_errors(s3, sample_dir):
    missing = f"s3://{s3.bucket}/nope/sample.jsonl"
    with pytest.raises(UserError, match=f"^input not found: {re.escape(missing)}$"):
        resolve_inputs([missing])
    with pytest.raises(UserError, match="^input not found: "):
        resolve_inputs([f"s3://{s3.bucket}/nope/*.jsonl"])
    with pytest.raises(UserError, match="^input not found: "):
        resolve_inputs(["s3://no-such-bucket-for-ray-job/x.jsonl"])
    s3.put_object(Bucket=s3.bucket, Key="docs/README.txt", Body=b"x")
    with pytest.raises(UserError, match="holds no"):
        resolve_inputs([f"s3://{s3.bucket}/docs/"])
    with pytest.raises(UserError, match="unknown input type"):
        resolve_inputs([f"s3://{s3.bucket}/docs/README.txt"])
    with pytest.raises(UserError, match="Protocol not known: nosuchproto"):
        resolve_inputs(["nosuchproto://bucket/x.jsonl"])


def test_a_missing_fsspec_backend_names_the_package_to_install():
    import importlib.util

    if importlib.util.find_spec("adlfs"):
        pytest.skip("adlfs is installed here")
    with pytest.raises(UserError, match="(?i)cannot read abfs:.*install adlfs"):
        resolve_inputs(["abfs://container/papers.jsonl"])


def test_file_urls_read_like_local_paths(sample_dir, small_units):
    local = [str(sample_dir / name) for name in SAMPLE_NAMES]
    files = resolve_inputs([(sample_dir / name).as_uri() for name in SAMPLE_NAMES])
    assert [f.path for f in files] == [(sample_dir / name).as_uri() for name in SAMPLE_NAMES]
    assert keyed_items(files, 100_000) == keyed_items(resolve_inputs(local), 100_000)


def test_absolute_inputs_leaves_urls_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "local.jsonl").write_text("{}\n")
    urls = ("s3://bucket/dir/", "https://host/a.jsonl?x=1", "hf://datasets/o/n/f.jsonl",
            "file:///data/x.jsonl")
    cfg = absolute_inputs(JobConfig.of(inputs=urls + ("local.jsonl",)))
    assert cfg.spec.inputs == urls + (str(tmp_path / "local.jsonl"),)


# ---- https:// --------------------------------------------------------------------------

@pytest.fixture
def http_root(tmp_path):
    """(base URL, served dir, request log) of a threaded Range-capable server on loopback."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), RangeFileHandler)
    server.root, server.requests = tmp_path, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path, server.requests
    server.shutdown()
    server.server_close()


def test_https_jsonl_is_read_in_ranges_like_the_local_file(http_root, sample_path):
    base, root, requests = http_root
    shutil.copyfile(sample_path, root / "sample.jsonl")
    files = resolve_inputs([f"{base}/sample.jsonl"])
    assert files[0].path == f"{base}/sample.jsonl" and files[0].size == sample_path.stat().st_size
    assert len(plan_units(files, 200_000, None)) >= 7
    local = resolve_inputs([str(sample_path)])
    assert keyed_items(files, 200_000) == keyed_items(local, 200_000)
    gets = [rng for method, rng in requests if method == "GET"]
    assert gets and all(gets), "every GET must ask for a byte range"
    assert keyed_items(files, 200_000, 123) == keyed_items(local, 200_000, 123)
    with pytest.raises(UserError, match="input not found"):
        resolve_inputs([f"{base}/missing.jsonl"])


# ---- DuckDB from s3:// -------------------------------------------------------------------

@pytest.fixture
def counted_downloads(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = Files.get

    def counting(files, inner, target, size=None):
        calls.append(inner)
        real(files, inner, target, size)

    monkeypatch.setattr(Files, "get", counting)
    return calls


def test_duckdb_url_is_fetched_once_and_reads_like_the_local_file(
        s3, papers_db, tmp_path, monkeypatch, counted_downloads):
    monkeypatch.setattr("ray_job.read.inputs.SQL_ROWS_PER_UNIT", 64)
    url = upload(s3, papers_db, "db/papers.db")
    sql, cache = SqlSpec("corpusid", table="papers_with_abstracts"), tmp_path / "cache"
    files = resolve_inputs([url])
    assert files[0].path == url and files[0].format == "duckdb"
    items = keyed_items(files, 0, None, sql=sql, cache_dir=str(cache))
    assert items == keyed_items(resolve_inputs([str(papers_db)]), 0, None, sql=sql)
    assert [key for key, _ in items] == [1000 + 7 * i for i in range(1000)]
    copies = [p for p in cache.iterdir() if p.name.endswith("-papers.db")]
    assert len(copies) == 1 and len(counted_downloads) == 1  # planning + 16 units: one fetch
    assert copies[0].read_bytes() == papers_db.read_bytes()
    fetched_at = copies[0].stat().st_mtime_ns
    again = keyed_items(resolve_inputs([url]), 0, 10, sql=sql, cache_dir=str(cache))
    assert again == items[:10]
    assert copies[0].stat().st_mtime_ns == fetched_at and len(counted_downloads) == 1
    assert not [p for p in cache.iterdir() if p.name.endswith(".part")]


def test_duckdb_copy_defaults_to_the_nodes_temp_dir(s3, papers_db, tmp_path, monkeypatch,
                                                    counted_downloads):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    url = upload(s3, papers_db, "papers.duckdb")
    units = plan_units(resolve_inputs([url]), 0, 5,
                       SqlSpec("corpusid", table="papers_with_abstracts"))
    assert units and all(u.cache_dir is None for u in units)  # each node picks its own
    assert [key for u in units for key, _ in read_unit(u)] == [1000 + 7 * i for i in range(5)]
    cache = tmp_path / f"ray-embed-{os.getuid()}" / "inputs"         # private to this user
    assert len(list(cache.glob("*-papers.duckdb"))) == 1
    assert len(counted_downloads) == 1


def test_concurrent_fetches_on_one_node_download_once(s3, papers_db, tmp_path, counted_downloads):
    from concurrent.futures import ThreadPoolExecutor

    url = upload(s3, papers_db, "db/papers.db")
    with ThreadPoolExecutor(6) as pool:
        paths = list(pool.map(lambda _: remote_files.local_copy(url, str(tmp_path)), range(6)))
    assert len(set(paths)) == 1 and Path(paths[0]).read_bytes() == papers_db.read_bytes()
    assert len(counted_downloads) == 1


def test_cache_names_follow_the_url_size_and_version():
    name = remote_files.cache_name
    url = "s3://b/dir/papers.db"
    assert name(url, {"size": 10, "ETag": '"a"'}) == name(url, {"size": 10, "ETag": '"a"'})
    assert name(url, {"size": 10, "ETag": '"a"'}).endswith("-papers.db")
    assert len({name(url, {"size": 10, "ETag": '"a"'}), name(url, {"size": 10, "ETag": '"b"'}),
                name(url, {"size": 11, "ETag": '"a"'}),
                name("s3://b/other/papers.db", {"size": 10, "ETag": '"a"'})}) == 4


# ---- hf:// -------------------------------------------------------------------------------

@pytest.fixture
def hub(monkeypatch):
    """A local Hub API server, reached through fsspec's per-protocol defaults: the same
    storage-option route (FSSPEC_HF_ENDPOINT=...) a user has, no ray_job setting involved.
    (huggingface_hub read HF_ENDPOINT at import, long before this test.)"""
    import fsspec.config
    from hub_server import HubServer

    with HubServer() as server:
        monkeypatch.setitem(fsspec.config.conf, "hf", {"endpoint": server.url})
        yield server


def test_hf_dataset_jsonl_is_read_in_ranges_like_the_local_file(hub, sample_path):
    hub.add_file("owner/papers", "data/sample.jsonl", sample_path.read_bytes())
    hub.add_file("owner/papers", "data/notes.md", b"# not an input\n")
    url = "hf://datasets/owner/papers/data/sample.jsonl"
    files = resolve_inputs([url])
    assert files[0].path == url and files[0].size == sample_path.stat().st_size
    assert [f.path for f in resolve_inputs(["hf://datasets/owner/papers/data"])] == [url]
    assert len(plan_units(files, 200_000, None)) >= 7
    local = resolve_inputs([str(sample_path)])
    assert keyed_items(files, 200_000) == keyed_items(local, 200_000)
    downloads = [r for r in hub.requests if r.method == "GET"
                 and r.kind in ("resolve", "lfs_download")]
    assert downloads and all(r.headers.get("range") for r in downloads)
    missing = "hf://datasets/owner/papers/data/missing.jsonl"
    with pytest.raises(UserError, match=f"^input not found: {re.escape(missing)}$"):
        resolve_inputs([missing])
    no_repo = "hf://datasets/owner/no-such-repo/sample.jsonl"
    with pytest.raises(UserError, match=f"^(input not found: |cannot read ){re.escape(no_repo)}"):
        resolve_inputs([no_repo])


def test_a_whole_hf_dataset_repo_reads_the_files_of_its_train_split(hub, sample_records, tmp_path):
    """hf://datasets/OWNER/NAME, laid out the way the Hub publishes datasets (data/SPLIT-*)."""
    table = pa.Table.from_pylist([{"corpusid": 1000 + i, "title": r["title"],
                                   "abstract": r["abstract"]}
                                  for i, r in enumerate(sample_records[:300])])
    parts = []
    for n, piece in enumerate((table.slice(0, 200), table.slice(200))):
        path = tmp_path / f"train-{n:05d}-of-00002.parquet"
        pq.write_table(piece, path, row_group_size=64)
        hub.add_file("owner/s2", f"data/{path.name}", path.read_bytes())
        parts.append(path)
    hub.add_file("owner/s2", "data/test-00000-of-00001.parquet", parts[1].read_bytes())
    hub.add_file("owner/s2", "README.md", b"---\nconfigs: []\n---\n# S2 papers\n")
    files = resolve_inputs(["hf://datasets/owner/s2"])
    assert [f.path for f in files] == [f"hf://datasets/owner/s2/data/{p.name}" for p in parts]
    local = resolve_inputs([str(p) for p in parts])
    assert keyed_items(files, 10**6) == keyed_items(local, 10**6)
    assert len(keyed_items(files, 10**6)) == 300

    hub.add_file("owner/flat", "papers.jsonl", b'{"id": "a", "title": "t", "abstract": "x"}\n')
    hub.add_file("owner/flat", "more/papers2.jsonl",
                 b'{"id": "b", "title": "t", "abstract": "x"}\n')
    assert [f.path for f in resolve_inputs(["hf://datasets/owner/flat/"])] == [
        "hf://datasets/owner/flat/more/papers2.jsonl", "hf://datasets/owner/flat/papers.jsonl"]
    hub.add_file("owner/only-test", "data/test-00000.parquet", parts[0].read_bytes())
    with pytest.raises(UserError, match="no .* files of split 'train'"):
        resolve_inputs(["hf://datasets/owner/only-test"])
