"""Shared fixtures: the real arXiv sample, a session-scoped local 2-CPU Ray, reference models."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "arxiv-metadata-sample-1000.jsonl"


@pytest.fixture(scope="session")
def sample_path() -> Path:
    if not SAMPLE.is_file():
        pytest.fail(f"the real arXiv sample is missing: {SAMPLE} (../shared must sit beside the repo)")
    return SAMPLE


@pytest.fixture(scope="session")
def sample_records(sample_path) -> list[dict]:
    with open(sample_path) as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="session")
def local_ray():
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

    from ray_job.models import bundled_model_path

    return SentenceTransformer(bundled_model_path(), device="cpu")


def clean(text: str) -> str:
    return " ".join(text.split())


def reference_text(record: dict) -> str:
    """The default template '{title}{sep}{abstract}', written independently of ray_job."""
    return clean(record["title"]) + "[SEP]" + clean(record["abstract"])
