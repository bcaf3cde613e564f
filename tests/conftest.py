"""Shared fixtures: the real arXiv sample, a session-scoped local 2-CPU Ray, reference models."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

# the first 1,000 records of the arXiv metadata snapshot (CC0), unchanged
SAMPLE = Path(__file__).resolve().parent / "data" / "arxiv-metadata-sample-1000.jsonl"


@pytest.fixture(scope="session")
def sample_path() -> Path:
    if not SAMPLE.is_file():
        pytest.fail(f"the real arXiv sample is missing: {SAMPLE}")
    return SAMPLE


@pytest.fixture(scope="session")
def sample_records(sample_path) -> list[dict]:
    with open(sample_path) as fh:
        return [json.loads(line) for line in fh]


def shard_files(directory: Path) -> list[Path]:
    """The complete shard files in a local shards/ folder, sorted by name."""
    return sorted(Path(directory).glob("part-*.arrow"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """An S3 API server (moto) on loopback for the whole session. Its endpoint and test
    credentials go into the environment before the local Ray starts, so Ray's worker
    processes reach it the way a cluster's nodes reach a real store (AWS_* variables)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"})
    yield endpoint
    server.stop()


@pytest.fixture
def s3(s3_endpoint):
    """A boto3 client and a fresh bucket (name in .bucket) on the session's S3 server."""
    import uuid

    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.bucket = f"papers-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=client.bucket)
    return client


@pytest.fixture(scope="session")
def local_ray(s3_endpoint):
    """A local Ray with 2 CPUs, like this machine and CI: an actor pool that took every CPU
    would starve the read tasks and hang the job (pytest-timeout turns that into a failure)."""
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def reference_model():
    from sentence_transformers import SentenceTransformer

    from ray_job.encode.model.loading import bundled_model_path

    return SentenceTransformer(bundled_model_path(), device="cpu")


def clean(text: str) -> str:
    return " ".join(text.split())


def reference_text(record: dict) -> str:
    """The default template '{title}{sep}{abstract}', written independently of ray_job."""
    return clean(record["title"]) + "[SEP]" + clean(record["abstract"])


@pytest.fixture(scope="session")
def papers_db(tmp_path_factory, sample_records):
    """The real sample as a DuckDB table like the Semantic Scholar notebook's, keyed by an
    integer corpusid and inserted out of key order (readers must order by the key)."""
    import duckdb

    path = tmp_path_factory.mktemp("db") / "papers.db"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE papers_with_abstracts "
                "(corpusid BIGINT, title VARCHAR, abstract VARCHAR)")
    rows = [(1000 + 7 * i, r["title"], r["abstract"]) for i, r in enumerate(sample_records)]
    con.executemany("INSERT INTO papers_with_abstracts VALUES (?, ?, ?)", rows[::-1])
    con.close()
    return path


@pytest.fixture(scope="session")
def finished_run(local_ray, sample_path, tmp_path_factory):
    """A finished 20-row run with a Parquet export, for the publishing tests."""
    from ray_job.config import JobConfig
    from ray_job.pipeline import run

    out = tmp_path_factory.mktemp("run")
    run(JobConfig.of(inputs=(str(sample_path),), output=str(out), limit=20, precision="fp32",
                  exports=("parquet",)))
    return out


@pytest.fixture(scope="session")
def full_sample_run(local_ray, sample_path, tmp_path_factory):
    """The whole real sample (1000 papers), default settings, arXiv urls: (run dir, report).
    Read it; a test that writes into a run works on a copy (`copy_run`)."""
    from ray_job.config import JobConfig
    from ray_job.pipeline import run

    out = tmp_path_factory.mktemp("full")
    cfg = JobConfig.of(inputs=(str(sample_path),), output=str(out), url_template="arxiv",
                       shard_rows=128)
    return out, run(cfg)


def copy_run(run_dir: Path, target: Path) -> Path:
    """A copy of a finished run (shards and results) to change freely."""
    import shutil

    target.mkdir(parents=True)
    for path in Path(run_dir).iterdir():
        if path.name == "lease.json":
            continue
        (shutil.copytree if path.is_dir() else shutil.copy2)(path, target / path.name)
    return target


@pytest.fixture(scope="session")
def mapped_sample_run(full_sample_run, tmp_path_factory):
    """A copy of the whole-sample run with its map, UMAP fitted on 300 of the 1000 rows (so
    700 are placed), and a Parquet export made after it."""
    from ray_job.finalize.exports import export_parquet
    from ray_job.map.build import build_map
    from ray_job.rundir.rundir import RunDir

    out = copy_run(full_sample_run[0], tmp_path_factory.mktemp("mapped") / "run")
    info = build_map(out, sample=300)
    export_parquet(out / "embeddings.h5", RunDir.at(out))
    return out, info


@pytest.fixture
def ray_embed(local_ray, capsys, monkeypatch):
    """The command line in this process, on the session's Ray (no Ray start per call)."""
    from types import SimpleNamespace

    from ray_job.cli import main

    def call(*args, cwd):
        monkeypatch.chdir(cwd)
        code = main(list(args))
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)

    return call
