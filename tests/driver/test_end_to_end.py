"""The whole job on the real arXiv sample, on a local 2-CPU Ray."""
from __future__ import annotations

import json
import random

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import reference_text

from ray_job.config import JobConfig
from ray_job.encode.model.precision import cpu_has_native_bf16
from ray_job.errors import UserError
from ray_job.pipeline import run


def read_h5(path):
    with h5py.File(path) as h5:
        return ({k: h5[k][:] for k in h5}, dict(h5.attrs))


def min_cosine(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(1).min())


def chosen_precision(out) -> str:
    """What `auto` chose for a run (timed on this machine: encode/calibrate.py)."""
    return json.loads((out / "job.json").read_text())["precision"]


def test_real_sample_matches_sentence_transformers_encode(full_sample_run, sample_records,
                                                          reference_model):
    out, report = full_sample_run
    data, attrs = read_h5(out / "embeddings.h5")
    assert [i.decode() for i in data["ids"]] == [r["id"] for r in sample_records]  # input order
    assert data["embeddings"].shape == (1000, 384) and data["embeddings"].dtype == np.float32
    assert data["urls"][0] == b"https://arxiv.org/pdf/0704.0001.pdf"
    # the reference encode costs as much as the run: compare 300 rows, the first 100 and
    # 200 drawn from the rest (all 1000 are checked for order, count and norms)
    picked = list(range(100)) + sorted(random.Random(1).sample(range(100, 1000), 200))
    expected = reference_model.encode([reference_text(sample_records[i]) for i in picked],
                                      batch_size=64)
    worst = min_cosine(data["embeddings"][picked], expected)
    print(f"{chosen_precision(out)} run against sentence-transformers' fp32 encode: min cosine "
          f"{worst:.6f}")
    assert worst >= 0.999
    np.testing.assert_allclose(np.linalg.norm(data["embeddings"], axis=1), 1.0, atol=1e-3)
    assert attrs["count"] == 1000 and attrs["dim"] == 384 and attrs["normalized"]
    assert attrs["pooling"] == "mean" and attrs["precision"] == chosen_precision(out)
    assert json.loads(attrs["versions"])["ray"]


def test_report_and_job_files(full_sample_run, local_ray):
    out, report = full_sample_run
    # on 2 CPUs a pool holding every CPU starves the read tasks and hangs: sized right, it ran
    assert local_ray.cluster_resources()["CPU"] == 2 and report["replicas"] == 1
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk == report
    assert (report["rows_read"], report["rows_embedded"],
            report["rows_rejected"]) == (1000, 1000, 0)
    assert report["docs_per_s"] > 0 and report["tokens_per_s"] > 0
    assert report["padding_efficiency"] >= 0.9
    chosen = report["pipeline"]["defaults"]          # what was left unset, chosen (CPU: as before)
    assert (chosen["max_batch_tokens"], chosen["gpus_per_replica"]) == (16384, 1.0)
    job = json.loads((out / "job.json").read_text())
    choice = job["precision_choice"]                  # auto: timed here, the fastest faithful
    assert job["config"]["spec"]["precision"] == "auto" and job["precision"] == choice["precision"]
    timed = {t["precision"]: t for t in choice["trials"] if t["threads"] == choice["threads"]}
    expected = ["fp32", "bf16", "bf16-weights"] if cpu_has_native_bf16() else ["fp32"]
    assert sorted(timed) == sorted(expected) and choice["docs"] >= 16
    faithful = [p for p, t in timed.items() if p == "fp32" or t["min_cosine"] >= 0.999]
    assert choice["precision"] in faithful
    assert report["pipeline"]["defaults"]["precision"] == choice
    assert len(job["config_hash"]) == 16
    assert job["model"]["max_seq_length"] == 256


def test_parquet_input_gives_the_same_embeddings(local_ray, full_sample_run, sample_records,
                                                 tmp_path):
    table = pa.Table.from_pylist([{"id": r["id"], "title": r["title"], "abstract": r["abstract"]}
                                  for r in sample_records[:150]])
    pq.write_table(table, tmp_path / "papers.parquet", row_group_size=32)    # 5 row groups
    report = run(JobConfig.of(inputs=(str(tmp_path / "papers.parquet"),),
                              output=str(tmp_path / "o")))
    assert report["rows_embedded"] == 150
    parquet, _ = read_h5(tmp_path / "o" / "embeddings.h5")
    jsonl, _ = read_h5(full_sample_run[0] / "embeddings.h5")
    assert parquet["ids"].tolist() == jsonl["ids"][:150].tolist()
    worst = min_cosine(parquet["embeddings"], jsonl["embeddings"][:150])
    print(f"{chosen_precision(tmp_path / 'o')}: Parquet against JSON Lines input, min cosine "
          f"{worst:.6f}")
    assert worst >= 0.9999


def test_rerun_resumes_and_a_different_template_is_refused(local_ray, sample_path, tmp_path):
    cfg = JobConfig.of(inputs=(str(sample_path),), output=str(tmp_path), limit=40, precision="fp32",
                    block_bytes=20_000)
    first = run(cfg)
    assert first["rows_embedded_this_run"] == 40 and not first["resumed"]
    second = run(cfg.replace(limit=70))
    assert second["resumed"] and second["rows_embedded"] == 70
    assert second["rows_embedded_this_run"] == 30          # only the new rows were encoded
    with pytest.raises(UserError, match="text: '{title}{sep}{abstract}' -> '{abstract}'"):
        run(cfg.replace(text="{abstract}"))


@pytest.mark.slow        # every run of the suite is on this 2-CPU Ray; test_report_... checks it
@pytest.mark.timeout(300)
def test_a_two_cpu_ray_never_hangs(local_ray, sample_path, tmp_path):
    """On 2 CPUs an encoder pool holding every CPU starves the read tasks and the job waits
    forever (checked by hand: no row in 150 s for a 30-row job). Sized right, it finishes."""
    assert local_ray.cluster_resources()["CPU"] == 2
    report = run(JobConfig.of(inputs=(str(sample_path),), output=str(tmp_path), limit=30))
    assert report["rows_embedded"] == 30 and report["replicas"] == 1


def test_search_finds_a_paper_from_its_own_title(full_sample_run, sample_records):
    from ray_job.search.search import search

    out, _ = full_sample_run
    picked = random.Random(0).sample(sample_records, 100)
    results = search(out, [" ".join(r["title"].split()) for r in picked], k=3)
    found = sum(r["id"] in [h.id for h in hits] for r, hits in zip(picked, results, strict=True))
    assert found >= 90
    assert results[0][0].url.startswith("https://arxiv.org/pdf/")
    assert results[0][0].score >= results[0][1].score >= results[0][2].score
