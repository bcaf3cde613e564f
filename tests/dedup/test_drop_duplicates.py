"""--drop-duplicates: finalize runs the dedup after embeddings.h5 and every export keeps one
paper per component, while embeddings.h5 keeps every row; refused without an export."""
from __future__ import annotations

import json

import h5py
import pyarrow.parquet as pq
import pytest
from conftest import copy_run

from ray_job.config import JobConfig
from ray_job.errors import ConfigError
from ray_job.finish import finalize_run
from ray_job.rundir.rundir import RunDir

THRESHOLD = 0.9          # the real sample holds a few pairs of papers this close


def test_drop_duplicates_exports_one_paper_per_component(full_sample_run, tmp_path):
    root = copy_run(full_sample_run[0], tmp_path / "run")
    job = json.loads((root / "job.json").read_text())
    job["config"]["options"].update(drop_duplicates=True, dedup_threshold=THRESHOLD,
                                    exports=["parquet", "int8"])
    (root / "job.json").write_text(json.dumps(job))
    with RunDir.at(root).held() as held:
        report = finalize_run(held)
    with h5py.File(root / "embeddings.h5") as h5:
        all_ids = [i.decode() for i in h5["ids"][:]]
    dropped = pq.read_table(root / "dedup" / "pairs.parquet").to_pylist()
    assert dropped and report["near_duplicates"]["dropped"] == len(dropped)
    assert report["exports"]["dropped_duplicates"] == len(dropped)
    kept = [i for i in all_ids if i not in {p["id"] for p in dropped}]
    parquet = pq.read_table(root / "parquet").column("id").to_pylist()
    assert parquet == kept and len(all_ids) == 1000
    with h5py.File(root / "embeddings-int8.h5") as h5:
        assert [i.decode() for i in h5["ids"][:]] == kept
        assert h5["embeddings"].shape[0] == len(kept)
    assert {p["duplicate_of"] for p in dropped} <= set(kept)


def test_drop_duplicates_without_an_export_is_refused():
    with pytest.raises(ConfigError, match="give at least one export"):
        JobConfig.of(drop_duplicates=True)
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        JobConfig.of(drop_duplicates=True, exports=("parquet",), dedup_threshold=1.2)
