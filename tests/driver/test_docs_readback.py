"""The read-back code the README and the dataset card show works as written, on an
embeddings.h5 whose ids are not ASCII (`h5["ids"][:].astype(str)` raised UnicodeDecodeError)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np

from ray_job.config import JobConfig
from ray_job.publish.upload import dataset_card
from ray_job.rundir.job import JobRecord, ModelInfo
from ray_job.rundir.rundir import RunDir

ROOT = Path(__file__).resolve().parents[2]
IDS = ["0704.0001", "Müller-2020", "論文-7"]


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, re.S)


def write_h5(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h5:
        h5["ids"] = np.array([i.encode() for i in IDS])        # as finalize stores them
        h5["embeddings"] = np.ones((3, 4), np.float32)
        h5["urls"] = np.array([f"https://example.org/{i}".encode() for i in IDS])


def test_the_readme_read_back_block_reads_non_ascii_ids(tmp_path, monkeypatch):
    block = [b for b in python_blocks((ROOT / "README.md").read_text()) if "h5py" in b][0]
    write_h5(tmp_path / "out" / "embeddings.h5")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(block, scope)
    assert list(scope["ids"]) == IDS
    assert list(scope["urls"])[1] == "https://example.org/Müller-2020"


def test_the_dataset_card_read_back_block_reads_non_ascii_ids(tmp_path, monkeypatch):
    info = ModelInfo("m", "/models/m", "sentence-transformers", "/models/m", 128, "[SEP]", 0,
                     4, "mean", True)
    job = JobRecord.new(JobConfig.of(text="{title}", precision="fp32"), info,
                        {"weights": "sha256:x"}, "cpu", "fp32")
    (tmp_path / "job.json").write_text(job.to_json())
    (tmp_path / "report.json").write_text(json.dumps({"dim": 4, "rows_embedded": 3,
                                                      "precision": "fp32"}))
    write_h5(tmp_path / "embeddings.h5")
    block = python_blocks(dataset_card(RunDir.at(tmp_path)))[0]
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(block, scope)
    assert list(scope["ids"]) == IDS
