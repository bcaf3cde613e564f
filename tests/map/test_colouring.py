"""`ray-embed map --color agreement | duplicates`: the map as it is (no new layout) coloured
by each paper's k-NN label agreement, or by near-duplicate group from dedup/pairs.parquet;
one line when the labels or the pairs are missing. On the real arXiv sample."""
from __future__ import annotations

import collections
import io
import json

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import copy_run

from ray_job.quality.labels import archive_of
from ray_job.rundir.fingerprint import h5_fingerprint

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run(mapped_sample_run, tmp_path):
    return copy_run(mapped_sample_run[0], tmp_path / "run")


def agreement_oracle(out, labels: list[str | None], k: int = 10) -> float:
    """The mean share of each labelled paper's k nearest labelled papers (cosine, all
    pairs compared) that carry its label."""
    with h5py.File(out / "embeddings.h5", "r") as h5:
        vectors = h5["embeddings"][:].astype(np.float64)
    keep = np.array([label is not None for label in labels])
    vectors = vectors[keep] / np.linalg.norm(vectors[keep], axis=1, keepdims=True)
    own = np.array(labels, dtype=object)[keep]
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = np.argsort(-similarity, axis=1)[:, :k]
    return float((own[nearest] == own[:, None]).mean())


def test_agreement_colours_the_current_map(run, sample_records, ray_embed, tmp_path):
    before = (run / "map" / "coords.arrow").stat().st_mtime_ns
    done = ray_embed("map", str(run), "--color", "agreement", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first.startswith("map up to date: 1,000 papers")
    assert (run / "map" / "coords.arrow").stat().st_mtime_ns == before    # no new layout
    labels = [archive_of(r["categories"]) for r in sample_records]
    counts = collections.Counter(label for label in labels if label)
    total = sum(counts.values())
    chance = sum(n * (n - 1) for n in counts.values()) / (total * (total - 1))
    stored = json.loads((run / "map" / "map.json").read_text())
    found = stored["colourings"]["agreement"]
    assert found["field"] == "categories" and found["labelled"] == sum(counts.values())
    assert found["chance"] == pytest.approx(chance, abs=1e-4)
    assert found["mean"] == pytest.approx(agreement_oracle(run, labels), abs=1e-3)
    assert found["mean"] > chance + 0.2, found          # neighbours share labels, not by luck
    assert second == (f"map/map-agreement.png: k-NN label agreement at 10 by categories, "
                      f"mean {found['mean']:.2f} ({chance:.2f} by chance) over "
                      f"{found['labelled']:,} labelled papers")
    assert stored["pictures"] == {"label": "map/map.png", "agreement": "map/map-agreement.png"}
    png = (run / "map" / "map-agreement.png").read_bytes()
    assert png[:8] == PNG and len(png) > 20_000


def test_agreement_without_labels_is_one_line(run, ray_embed, tmp_path):
    job = json.loads((run / "job.json").read_text())
    job["config"]["options"]["label_field"] = "no_such_field"
    (run / "job.json").write_text(json.dumps(job))
    done = ray_embed("map", str(run), "--color", "agreement", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout.startswith("map up to date")
    assert done.stderr.strip() == (
        f"ray-embed: error: no labels to agree on: the papers of {run} have no field "
        f"'no_such_field'; name the input field that labels a paper with --label-field when "
        f"running")
    assert not (run / "map" / "map-agreement.png").exists()


def write_dedup(run, pairs: list[tuple[int, int]], fingerprint: str) -> None:
    """A dedup/ as `ray-embed dedup` writes it: (dropped row, kept row) pairs."""
    with h5py.File(run / "embeddings.h5", "r") as h5:
        ids = [i.decode() for i in h5["ids"][:]]
    (run / "dedup").mkdir()
    pq.write_table(pa.table({
        "id": [ids[r] for r, _ in pairs], "row": pa.array([r for r, _ in pairs], pa.int64()),
        "duplicate_of": [ids[k] for _, k in pairs],
        "duplicate_of_row": pa.array([k for _, k in pairs], pa.int64()),
        "cosine": pa.array([0.99] * len(pairs), pa.float32()),
        "cluster": pa.array([k for _, k in pairs], pa.int64()),
        "title": ["t"] * len(pairs), "duplicate_of_title": ["t"] * len(pairs)}),
        run / "dedup" / "pairs.parquet")
    (run / "dedup" / "dedup.json").write_text(json.dumps({"fingerprint": fingerprint,
                                                          "threshold": 0.95}))


def test_duplicates_colour_each_group(run, ray_embed, tmp_path):
    from PIL import Image

    write_dedup(run, [(1, 0), (2, 0), (7, 5), (900, 5), (42, 40)],
                h5_fingerprint(run / "embeddings.h5"))
    done = ray_embed("map", str(run), "--color", "duplicates", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1] == ("map/map-duplicates.png: 8 of 1,000 papers drawn "
                                           "in 3 near-duplicate groups")
    stored = json.loads((run / "map" / "map.json").read_text())
    assert stored["colourings"]["duplicates"]["groups"] == 3
    assert stored["pictures"]["duplicates"] == "map/map-duplicates.png"
    pixels = np.asarray(Image.open(io.BytesIO(
        (run / "map" / "map-duplicates.png").read_bytes())).convert("RGB")).reshape(-1, 3)
    tab20 = [(0x1f, 0x77, 0xb4), (0xae, 0xc7, 0xe8), (0xff, 0x7f, 0x0e)]   # the 3 groups'
    for colour in tab20:
        assert (pixels == colour).all(axis=1).sum() > 5, colour


def test_duplicates_need_a_current_dedup(run, ray_embed, tmp_path):
    absent = ray_embed("map", str(run), "--color", "duplicates", cwd=tmp_path)
    assert absent.returncode == 2 and absent.stdout == ""
    assert absent.stderr.strip() == (f"ray-embed: error: {run} has no near-duplicates yet: run "
                                     f"`ray-embed dedup {run}` first")
    write_dedup(run, [(1, 0)], "0" * 32)                     # made from other vectors
    stale = ray_embed("map", str(run), "--color", "duplicates", cwd=tmp_path)
    assert stale.returncode == 2
    assert stale.stderr.strip() == (f"ray-embed: error: {run}'s near-duplicates were found in "
                                    f"other vectors than its embeddings.h5 now: run "
                                    f"`ray-embed dedup {run}` first")
    assert not (run / "map" / "map-duplicates.png").exists()


def test_labels_come_from_the_field_the_run_names(run, sample_records):
    """--label-field (job.json's options.label_field) labels the map's rows, read for the
    rows asked for only."""
    from ray_job.map.labels import input_labels
    from ray_job.read.plan import frozen_plan
    from ray_job.rundir.rundir import RunDir

    job = json.loads((run / "job.json").read_text())
    job["config"]["options"]["label_field"] = "submitter"
    (run / "job.json").write_text(json.dumps(job))
    run_dir = RunDir.at(run)
    wanted = np.array([0, 3, 500, 999])
    found = input_labels(run / "embeddings.h5", run_dir.load_job(), frozen_plan(run_dir),
                         1000, wanted=wanted)
    assert found.field == "submitter"
    assert [found.names[c] for c in found.codes] == [
        " ".join(sample_records[r]["submitter"].split()) for r in wanted]
