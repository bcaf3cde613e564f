"""The nearest-neighbour index: built from embeddings.h5 in RUN/index/, rebuilt only when the
vectors change, used by search and similar (same answers as the exact scan), titles from the
inputs, published with the run, and the same on a run directory in S3."""
from __future__ import annotations

import json
import shutil

import h5py
import numpy as np

from ray_job.cli import main
from ray_job.config import JobConfig
from ray_job.publish.upload import files_to_publish
from ray_job.rundir.job import JobRecord, ModelInfo
from ray_job.rundir.rundir import RunDir
from ray_job.search import ann
from ray_job.search.index import build_index, current_index
from ray_job.search.search import nearest, search, top_k
from ray_job.search.similar import similar
from ray_job.search.titles import read_titles


def synthetic_run(root, rows: int, dim: int, seed: int = 0):
    """A finished-looking run directory: inputs with titles, job.json, embeddings.h5."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    ids = [f"p{i:06d}" for i in range(rows)]
    with open(root / "papers.jsonl", "w") as fh:
        for i, pid in enumerate(ids):
            if i == 4:            # a record the run rejected (no abstract), with row 4's id
                fh.write(json.dumps({"id": pid, "title": "Same paper"}) + "\n")
            record = {"id": pid, "title": f"Paper  {i}", "abstract": "x"}
            fh.write(json.dumps(record) + "\n")
    cfg = JobConfig.of(inputs=(str(root / "papers.jsonl"),), output=str(root))
    info = ModelInfo("m", "/models/m", "transformers", "/models/m", 64, "[SEP]", 0, dim, "cls",
                     False)
    job = JobRecord.new(cfg, info, {"weights": "sha256:x"}, "cpu", "fp32")
    (root / "job.json").write_text(job.to_json())
    centres = rng.standard_normal((50, dim)).astype(np.float32)
    emb = (centres[rng.integers(0, 50, rows)]
           + 0.5 * rng.standard_normal((rows, dim)).astype(np.float32))
    with h5py.File(root / "embeddings.h5", "w") as h5:
        h5["ids"] = np.array([i.encode() for i in ids])
        h5["embeddings"] = emb
        h5.attrs["count"] = rows
    return root, emb


def test_a_large_run_gets_an_ivf_index_that_answers_like_the_exact_scan(tmp_path):
    root, emb = synthetic_run(tmp_path / "run", rows=ann.FLAT_BELOW + 10_000, dim=32)
    info = build_index(root)
    assert info["rebuilt"] and info["nlist"] > 0 and info["titles"]
    assert {p.name for p in (root / "index").iterdir()} == {"ann.faiss", "index.json",
                                                            "titles.arrow"}
    h5 = root / "embeddings.h5"
    index = current_index(RunDir.at(root), h5)
    assert index is not None
    queries = emb[::6000] + 0.1
    exact, _ = top_k(h5, queries, 10)
    found = [nearest(h5, index, q, 10)[0] for q in queries]
    recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact, strict=True)])
    assert recall >= 0.95
    hits = similar(root, "p000004", k=3)
    assert "p000004" not in [h.id for h in hits]
    by_exact, _ = nearest(h5, None, emb[4], 3, exclude=4)
    assert [h.id for h in hits] == [f"p{r:06d}" for r in by_exact]
    # titles come from the input records (whitespace cleaned); the rejected record before
    # row 4 has its id and lends its title, the same paper's
    rows = [int(r) for r in nearest(h5, index, emb[10], 5, exclude=10)[0]]
    titles = [h.title for h in similar(root, "p000010", k=5)]
    assert titles == [f"Paper {r}" if r != 4 else "Same paper" for r in rows]
    assert read_titles(root / "index" / "titles.arrow", [3, 4, 5, 59_999]) == [
        "Paper 3", "Same paper", "Paper 5", "Paper 59999"]


def test_the_index_is_rebuilt_only_when_the_vectors_change(tmp_path, capsys):
    root, emb = synthetic_run(tmp_path / "run", rows=300, dim=8)
    assert build_index(root)["rebuilt"]
    stamp = (root / "index" / "ann.faiss").stat().st_mtime_ns
    assert not build_index(root)["rebuilt"]
    assert (root / "index" / "ann.faiss").stat().st_mtime_ns == stamp
    with h5py.File(root / "embeddings.h5", "r+") as h5:           # re-finalized, new vectors
        h5["embeddings"][7] = -h5["embeddings"][7]
    h5 = root / "embeddings.h5"
    assert current_index(RunDir.at(root), h5) is None             # stale: exact scan
    assert "out of date" in capsys.readouterr().err
    assert similar(root, "p000001", k=2)[0].title is None          # exact scan, no titles
    assert build_index(root)["rebuilt"]
    assert current_index(RunDir.at(root), h5) is not None


def test_cli_index_similar_and_json(tmp_path, capsys):
    root, _ = synthetic_run(tmp_path / "run", rows=200, dim=8)
    assert main(["index", str(root)]) == 0
    assert "index built: 200 vectors (dim 8), exact (flat)" in capsys.readouterr().out
    assert main(["index", str(root)]) == 0
    assert "index up to date" in capsys.readouterr().out
    assert main(["similar", str(root), "p000002", "-k", "4", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert [h["rank"] for h in hits] == [1, 2, 3, 4] and "p000002" not in [h["id"] for h in hits]
    assert set(hits[0]) == {"rank", "score", "id", "title", "url"} and hits[0]["title"]
    assert main(["similar", str(root), "nope"]) == 2
    assert "paper 'nope' is not in" in capsys.readouterr().err
    assert main(["index", str(tmp_path / "nowhere")]) == 2


def test_search_uses_the_index_and_it_is_published_with_the_run(finished_run, tmp_path,
                                                                 sample_records):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    build_index(run)
    title = " ".join(sample_records[5]["title"].split())
    hit = search(run, [title], k=3)[0][0]
    assert hit.id == sample_records[5]["id"] and hit.title == title
    published = set(files_to_publish(RunDir.at(run)))
    assert {"index/ann.faiss", "index/index.json", "index/titles.arrow"} <= published


def test_an_index_for_a_run_in_s3(finished_run, s3, sample_records, tmp_path):
    url = f"s3://{s3.bucket}/runs/indexed"
    for path in finished_run.rglob("*"):
        if path.is_file() and path.parent.name != "index":
            s3.upload_file(str(path), s3.bucket, f"runs/indexed/{path.relative_to(finished_run)}")
    info = build_index(url)
    assert info["rebuilt"] and info["titles"]
    listed = s3.list_objects_v2(Bucket=s3.bucket, Prefix="runs/indexed/index/")["Contents"]
    assert {o["Key"].rsplit("/", 1)[1] for o in listed} == {"ann.faiss", "index.json",
                                                            "titles.arrow"}
    assert not build_index(url)["rebuilt"]
    hits = similar(url, sample_records[2]["id"], k=2)
    assert len(hits) == 2 and all(h.title for h in hits)
    changed = tmp_path / "embeddings.h5"                       # re-finalized elsewhere
    shutil.copyfile(finished_run / "embeddings.h5", changed)
    with h5py.File(changed, "r+") as h5:
        h5["embeddings"][0] = -h5["embeddings"][0]
    s3.upload_file(str(changed), s3.bucket, "runs/indexed/embeddings.h5")
    assert build_index(url)["rebuilt"]
