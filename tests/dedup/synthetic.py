"""A finished-looking run without a model: inputs with titles, job.json, report.json and an
embeddings.h5 of clustered unit vectors with planted duplicates (copies and near copies of
earlier rows)."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from ray_job.config import JobConfig
from ray_job.rundir.job import JobRecord, ModelInfo


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(rows: int, dim: int, seed: int = 0, topics: int = 40) -> np.ndarray:
    """Unit vectors around `topics` centres; two rows rarely come within cosine 0.9."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((topics, dim)))
    noise = rng.standard_normal((rows, dim)).astype(np.float32)
    return unit(centres[rng.integers(0, topics, rows)] + 0.9 * unit(noise))


def near_copy(vector: np.ndarray, cosine: float, rng) -> np.ndarray:
    """A unit vector at exactly `cosine` from `vector`."""
    other = rng.standard_normal(vector.shape).astype(np.float64)
    other -= other @ vector * vector
    other /= np.linalg.norm(other)
    return (cosine * vector + np.sqrt(1 - cosine**2) * other).astype(np.float32)


def plant(emb: np.ndarray, pairs: int, seed: int = 1,
          cosines=(1.0, 0.99, 0.97)) -> dict[int, int]:
    """Rows made duplicates of earlier rows (copy -> original), at the given cosines in turn."""
    rng = np.random.default_rng(seed)
    rows = len(emb)
    copies = rng.choice(np.arange(rows // 2, rows), pairs, replace=False)
    originals = rng.choice(np.arange(0, rows // 2), pairs, replace=False)
    planted = {}
    for n, (copy, original) in enumerate(zip(copies, originals, strict=True)):
        emb[copy] = near_copy(emb[original].astype(np.float64), cosines[n % len(cosines)], rng)
        planted[int(copy)] = int(original)
    return planted


def write_run(root: Path, emb: np.ndarray, report: bool = True) -> Path:
    rows, dim = emb.shape
    root.mkdir(parents=True, exist_ok=True)
    ids = [f"p{i:06d}" for i in range(rows)]
    with open(root / "papers.jsonl", "w") as fh:
        for i, pid in enumerate(ids):
            fh.write(json.dumps({"id": pid, "title": f"Paper {i}", "abstract": "x"}) + "\n")
    cfg = JobConfig.of(inputs=(str(root / "papers.jsonl"),), output=str(root))
    info = ModelInfo("m", "/models/m", "transformers", "/models/m", 64, "[SEP]", 0, dim, "cls",
                     True)
    (root / "job.json").write_text(
        JobRecord.new(cfg, info, {"weights": "sha256:x"}, "cpu", "fp32").to_json())
    with h5py.File(root / "embeddings.h5", "w") as h5:
        h5["ids"] = np.array([i.encode() for i in ids])
        h5["embeddings"] = emb
        h5.attrs["count"] = rows
    if report:
        (root / "report.json").write_text(json.dumps({"rows_embedded": rows}) + "\n")
    return root
