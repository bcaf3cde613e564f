"""The map (ray-embed map / --map): UMAP on a sample, the rest placed, labels, the picture,
rebuilt only when the vectors change, in the Parquet export; on the real arXiv sample."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from conftest import copy_run

from ray_job.map.build import build_map
from ray_job.map.labels import by_keywords
from ray_job.quality.labels import archive_of
from ray_job.rundir.map_state import read_coords
from ray_job.rundir.rundir import RunDir


def test_the_map_of_the_real_sample(mapped_sample_run, sample_records):
    out, info = mapped_sample_run
    assert info["rebuilt"] and info["rows"] == 1000 and info["sample"] == 300
    coords = ipc.open_file(str(out / "map" / "coords.arrow")).read_all()
    xy = np.column_stack([coords.column("x").to_numpy(), coords.column("y").to_numpy()])
    assert xy.shape == (1000, 2) and np.isfinite(xy).all()
    # labels: the arXiv archive of each paper's first category
    assert info["labels"]["source"] == "categories"
    expected = [archive_of(r["categories"]) for r in sample_records]
    assert coords.column("label").to_pylist() == [
        e if e in info["labels"]["names"] else None for e in expected]
    # a map, not noise: papers of one archive lie closer together than papers at random,
    # for the 300 rows UMAP saw and for the 700 placed near them
    sampled = np.zeros(1000, bool)
    sampled[np.unique(np.linspace(0, 999, 300).astype(int))] = True
    labels = np.array([e or "" for e in expected])
    for part in (sampled, ~sampled):
        same, anyone = within_and_overall(xy[part], labels[part])
        assert same < 0.75 * anyone, (same, anyone)
    png = (out / "map" / "map.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    stored = json.loads((out / "map" / "map.json").read_text())
    assert stored["fingerprint"] == info["fingerprint"] and stored["plotted"] == 1000
    # the Parquet export made after the map carries every row's place and label
    table = pq.read_table(out / "parquet" / "part-00000.parquet")
    assert table.column("map_x").to_numpy().tolist() == xy[:, 0].tolist()
    assert table.column("map_label").to_pylist() == coords.column("label").to_pylist()


def within_and_overall(xy: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    d = np.linalg.norm(xy[:, None] - xy[None], axis=2)
    same = (labels[:, None] == labels[None]) & (labels[:, None] != "")
    np.fill_diagonal(same, False)
    return float(d[same].mean()), float(d[np.triu_indices(len(xy), 1)].mean())


def test_the_map_is_rebuilt_only_when_the_vectors_change(mapped_sample_run, tmp_path,
                                                         ray_embed):
    out = copy_run(mapped_sample_run[0], tmp_path / "run")
    before = (out / "map" / "coords.arrow").stat().st_mtime_ns
    assert build_map(out, sample=300)["rebuilt"] is False       # the copy holds the same h5
    h5_before = (out / "embeddings.h5").stat().st_ino
    done = ray_embed("finalize", str(out), "--map", cwd=tmp_path)   # a new h5, same vectors
    assert done.returncode == 0 and "map up to date: 1,000 papers" in done.stdout
    assert (out / "embeddings.h5").stat().st_ino != h5_before
    assert (out / "map" / "coords.arrow").stat().st_mtime_ns == before
    run_dir = RunDir.at(out)
    with h5py.File(out / "embeddings.h5", "r+") as h5:          # the vectors change
        h5["embeddings"][0] = -h5["embeddings"][0]
    again = build_map(out, sample=300)
    assert again["rebuilt"] and again["fingerprint"] != mapped_sample_run[1]["fingerprint"]
    assert read_coords(run_dir).num_rows == 1000


def test_without_categories_clusters_are_named_by_their_titles_words():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
    topics = [["neutrino", "oscillations"], ["graph", "colouring"], ["galaxy", "clusters"]]
    which = rng.integers(0, 3, 600)
    coords = (centres[which] + rng.standard_normal((600, 2))).astype(np.float32)
    titles = [f"On the {' '.join(topics[w])} of a model {i}" for i, w in enumerate(which)]
    labels = by_keywords(coords, np.arange(600), titles)
    assert labels.source == "title keywords" and len(labels.names) >= 3
    for topic, centre in zip(topics, centres, strict=True):
        near = labels.codes[np.linalg.norm(coords - centre, axis=1) < 3]
        named = {labels.names[c] for c in near}
        assert all(topic[0] in n or topic[1] in n for n in named), (topic, named)


def test_map_command_says_what_it_did_and_refuses_a_tiny_run(mapped_sample_run, ray_embed,
                                                             tmp_path):
    done = ray_embed("map", str(mapped_sample_run[0]), "--sample", "300", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("map up to date: 1,000 papers")
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    (tiny / "job.json").write_bytes((mapped_sample_run[0] / "job.json").read_bytes())
    with h5py.File(tiny / "embeddings.h5", "w") as h5:
        h5["ids"] = np.array([b"a", b"b"])
        h5["embeddings"] = np.eye(2, dtype=np.float32)
    refused = ray_embed("map", str(tiny), cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (f"ray-embed: error: a map needs at least 10 papers; "
                                      f"{tiny} has 2")


@pytest.mark.parametrize("categories, archive", [("hep-ph astro-ph.CO", "hep-ph"),
                                                 ("math.CO", "math"), ("", None), (None, None)])
def test_archive_of(categories, archive):
    assert archive_of(categories) == archive


def test_the_dataset_card_shows_the_map_and_declares_the_parquet_files(mapped_sample_run):
    from ray_job.publish.upload import dataset_card

    card = dataset_card(RunDir.at(mapped_sample_run[0]), "runs/w47")
    assert '    path: "runs/w47/parquet/part-*.parquet"\n' in card.split("---")[1]
    assert "![the papers laid out in 2-D with UMAP](map/map.png)" in card
    assert 'load_dataset("OWNER/NAME", data_files="runs/w47/parquet/part-*.parquet"' in card


def test_a_run_too_small_for_a_map_still_finishes_with_map(ray_embed, tmp_path, sample_path):
    done = ray_embed("run", "--input", str(sample_path), "--output", str(tmp_path / "o"),
                     "--limit", "5", "--map", cwd=tmp_path)
    assert done.returncode == 0 and "wrote 5 embeddings" in done.stdout
    assert "ray-embed: no map: a map needs at least 10 papers" in done.stderr
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["map"]["skipped"].startswith("a map needs at least 10 papers")
