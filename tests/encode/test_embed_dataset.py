"""`ray_job.embed_dataset` on a user's own Ray Dataset: the run's vectors for the same papers."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

import ray_job
from ray_job.errors import ConfigError

PAPERS = 40


@pytest.fixture(scope="module")
def papers(sample_path) -> list[dict]:
    with open(sample_path) as fh:
        records = [json.loads(line) for _, line in zip(range(PAPERS), fh, strict=False)]
    return [{"id": r["id"], "title": r["title"], "abstract": r["abstract"],
             "year": 2000 + i} for i, r in enumerate(records)]


def test_embed_dataset_gives_the_runs_vectors(local_ray, finished_run, papers):
    import ray.data

    ds = ray_job.embed_dataset(ray.data.from_items(papers), precision="fp32", shard_rows=16)
    rows = ds.take_all()
    assert {tuple(sorted(r)) for r in rows} == {("abstract", "embedding", "id", "title",
                                                 "year")}
    by_id = {r["id"]: np.asarray(r["embedding"], dtype=np.float32) for r in rows}
    assert len(by_id) == PAPERS
    with h5py.File(finished_run / "embeddings.h5", "r") as h5:    # 20 papers, fp32
        run_ids = [i.decode() for i in h5["ids"][:]]
        run_vectors = h5["embeddings"][:]
    assert set(run_ids) <= set(by_id)
    np.testing.assert_allclose(np.stack([by_id[i] for i in run_ids]), run_vectors, atol=1e-5)


def test_embed_dataset_checks_its_settings_on_the_driver(local_ray, papers):
    import ray.data

    ds = ray.data.from_items(papers)
    with pytest.raises(ConfigError):
        ray_job.embed_dataset(ds, precision="fp64")
    with pytest.raises(ConfigError, match="unknown config key"):
        ray_job.embed_dataset(ds, colour="red")
