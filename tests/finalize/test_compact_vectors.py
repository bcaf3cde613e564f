"""Compact vectors: --export int8 / binary (sentence-transformers' quantize_embeddings, bit for
bit), --truncate-dim, and the index and search over them with exact rescoring; the LanceDB
export. On the real arXiv sample."""
from __future__ import annotations

import random

import h5py
import numpy as np
import pytest
from conftest import copy_run
from sentence_transformers.util import quantize_embeddings

from ray_job.finalize.exports import run_exports
from ray_job.rundir.rundir import RunDir


@pytest.fixture(scope="module")
def exported(full_sample_run, tmp_path_factory):
    """A copy of the whole-sample run with the int8 (first 256 dims) and binary exports."""
    out = copy_run(full_sample_run[0], tmp_path_factory.mktemp("compact") / "run")
    run_dir = RunDir.at(out)
    made = run_exports(run_dir, ("binary",))
    made.update(run_exports(run_dir, ("int8",), truncate_dim=256))
    return out, made


def read(path):
    with h5py.File(path) as h5:
        return {k: h5[k][:] for k in h5}, dict(h5.attrs)


def test_int8_and_binary_exports_are_quantize_embeddings_codes(exported):
    out, made = exported
    assert made == {"binary": [f"{out}/embeddings-binary.h5"],
                    "int8": [f"{out}/embeddings-int8.h5"]}
    full, attrs = read(out / "embeddings.h5")
    vectors = full["embeddings"]
    binary, battrs = read(out / "embeddings-binary.h5")
    assert binary["embeddings"].shape == (1000, 48) and binary["embeddings"].dtype == np.int8
    assert np.array_equal(binary["embeddings"], quantize_embeddings(vectors, "binary"))
    assert battrs["precision"] == "binary" and battrs["dim"] == 384
    # int8 of the first 256 dims, normalised again (a normalised run), ranges from all rows
    cut = vectors[:, :256] / np.linalg.norm(vectors[:, :256], axis=1, keepdims=True)
    int8, iattrs = read(out / "embeddings-int8.h5")
    expected = quantize_embeddings(cut, "int8", calibration_embeddings=cut)
    assert np.array_equal(int8["embeddings"], expected)
    np.testing.assert_array_equal(int8["ranges"], np.vstack([cut.min(0), cut.max(0)]))
    assert (iattrs["dim"], iattrs["truncate_dim"], iattrs["source_dim"]) == (256, 256, 384)
    for codes in (binary, int8):
        assert codes["ids"].tolist() == full["ids"].tolist()
    published = RunDir.at(out).results.publishable()
    assert {"embeddings-int8.h5", "embeddings-binary.h5"} <= set(published)


@pytest.mark.parametrize("vectors, truncate_dim", [
    ("binary", None),
    pytest.param("int8", 128, marks=pytest.mark.slow),   # the int8 codes: tested bit for bit above
])
def test_search_through_a_compact_index_rescores_exactly(full_sample_run, tmp_path,
                                                         sample_records, vectors, truncate_dim):
    from ray_job.search.index import build_index
    from ray_job.search.search import search
    from ray_job.search.similar import similar

    out = copy_run(full_sample_run[0], tmp_path / "run")
    exact_hits = similar(out, "0704.0002", k=10)                    # no index: exact scan
    info = build_index(out, vectors=vectors, truncate_dim=truncate_dim)
    assert info["vectors"] == vectors and info["rebuilt"]
    assert info["truncate_dim"] == (truncate_dim or 0)
    hits = similar(out, "0704.0002", k=10)
    found = {h.id for h in hits} & {h.id for h in exact_hits}
    assert len(found) >= 9
    exact_score = {h.id: h.score for h in exact_hits}
    for hit in hits:                    # rescored: true cosines, as the exact scan's
        if hit.id in exact_score:
            assert hit.score == pytest.approx(exact_score[hit.id], abs=1e-6)
    if vectors == "binary":             # a query embedded by the run's model, too
        picked = random.Random(0).sample(sample_records, 40)
        results = search(out, [" ".join(r["title"].split()) for r in picked], k=3)
        assert sum(r["id"] in [h.id for h in hs]
                   for r, hs in zip(picked, results, strict=True)) >= 36
    assert build_index(out, vectors=vectors, truncate_dim=truncate_dim)["rebuilt"] is False
    assert build_index(out)["vectors"] == "float32"              # another kind: built again


def test_truncate_dim_is_checked_before_anything_runs(ray_embed, tmp_path, sample_path):
    out = tmp_path / "o"
    refused = ray_embed("run", "--input", str(sample_path), "--output", str(out),
                        "--export", "int8", "--truncate-dim", "999", cwd=tmp_path)
    assert refused.returncode == 2 and not out.exists()
    assert refused.stderr.strip() == ("ray-embed: error: truncate_dim must be between 1 and "
                                      "the model's dimension 384 "
                                      "(sentence-transformers/all-MiniLM-L6-v2); got 999")


def test_lance_export_is_a_table_lancedb_searches(full_sample_run, tmp_path, sample_records):
    import lancedb

    out = copy_run(full_sample_run[0], tmp_path / "run")
    made = run_exports(RunDir.at(out), ("lance",))
    assert made == {"lance": [f"{out}/lance/papers.lance"]}
    table = lancedb.connect(str(out / "lance")).open_table("papers")
    assert table.count_rows() == 1000
    with h5py.File(out / "embeddings.h5") as h5:
        vector = h5["embeddings"][7]
    (first, *_) = table.search(vector).metric("cosine").limit(5).to_list()
    record = sample_records[7]
    assert first["id"] == record["id"] and first["_distance"] == pytest.approx(0, abs=1e-5)
    assert first["title"] == " ".join(record["title"].split())
    assert first["url"] == f"https://arxiv.org/pdf/{record['id']}.pdf"
    assert np.allclose(first["vector"], vector)
    assert not list((out / "lance").glob(".*.tmp"))            # the build folder is gone
    again = run_exports(RunDir.at(out), ("lance",))             # replaced whole
    assert again == made and lancedb.connect(str(out / "lance")).open_table(
        "papers").count_rows() == 1000
    # published with the run (version manifests after the data they name), readable there
    from ray_job.publish.upload import upload

    sent = upload(out, f"file://{tmp_path}/published").uploaded
    lance_files = [n for n in sent if n.startswith("lance/")]
    assert lance_files and "/_versions/" in lance_files[-1]
    published = lancedb.connect(str(tmp_path / "published" / "lance")).open_table("papers")
    assert published.search(vector).limit(1).to_list()[0]["id"] == record["id"]


def test_a_missing_extra_is_one_line_before_anything_runs(ray_embed, tmp_path, sample_path,
                                                          monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "lancedb" else real(name, *a))
    out = tmp_path / "o"
    refused = ray_embed("run", "--input", str(sample_path), "--output", str(out),
                        "--export", "lance", cwd=tmp_path)
    assert refused.returncode == 2 and not out.exists()
    assert refused.stderr.strip() == ("ray-embed: error: lance needs lancedb: "
                                      "pip install 'ray_job[lance]'")
