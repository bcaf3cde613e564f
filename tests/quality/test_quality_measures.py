"""The quality measures on arrays whose answer is known: the sample, the health pass, the
identical-vector buckets, labels, k-NN agreement and the verdict."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from ray_job.quality import identical, verdict
from ray_job.quality.health import Health
from ray_job.quality.identical import IdenticalVectors, vector_hashes
from ray_job.quality.labels import chosen_field, label_of
from ray_job.quality.neighbours import label_agreement, nearest
from ray_job.quality.sample import SAMPLE_ROWS, STRETCHES, sample_rows, sample_size
from ray_job.quality.tap import QualityTap


def units(n: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_sample_is_every_row_when_small_and_bounded_stretches_when_large():
    assert sample_rows(100, 8192).tolist() == list(range(100))
    rows = sample_rows(10_000_000, sample_size(384))
    assert len(rows) == SAMPLE_ROWS and np.all(np.diff(rows) > 0)
    assert rows[0] == 0 and rows[-1] == 10_000_000 - 1
    assert len(np.flatnonzero(np.diff(rows) != 1)) == STRETCHES - 1
    assert np.array_equal(rows, sample_rows(10_000_000, sample_size(384)))   # deterministic
    assert sample_size(4096) * 4096 * 4 <= 64 << 20


def test_mean_cosine_is_the_mean_over_all_pairs_and_cut_texts_are_counted():
    vectors = units(300, 16) * 3.0            # not unit: the measure normalises
    vectors[:, 0] += 4.0                      # a common direction: cosine well above 0
    health = Health(max_tokens=128)
    tokens = np.r_[np.full(100, 128), np.full(150, 40), np.zeros(50)].astype(np.int32)
    for start in range(0, 300, 64):
        health.add(vectors[start:start + 64], tokens[start:start + 64])
    u = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = u @ u.T
    brute = (sims.sum() - np.trace(sims)) / (300 * 299)
    assert health.mean_cosine() == pytest.approx(brute, abs=1e-6)
    summary = health.summary()
    assert summary["cut_by_max_length"] == {"max_tokens": 128, "rows": 100, "of_rows": 250,
                                            "share": 0.4}
    assert summary["norms"]["min"] == pytest.approx(np.linalg.norm(vectors, axis=1).min(), 1e-5)


def test_hashes_tell_one_ulp_apart_and_equal_rows_alike():
    v = units(4, 32)
    w = v.copy()
    w[1, 5] = np.nextafter(w[1, 5], np.float32(2))
    w[2] = v[2]
    assert vector_hashes(v)[0] == vector_hashes(w)[0]
    assert vector_hashes(v)[1] != vector_hashes(w)[1]
    assert len(set(vector_hashes(units(5000, 8)).tolist())) == 5000


def test_identical_vectors_over_several_buckets(tmp_path, monkeypatch):
    monkeypatch.setattr(identical, "BUCKET_ROWS", 100)        # several buckets for 1,000 rows
    vectors = units(1000, 8)
    texts = np.arange(1000, dtype=np.uint64) + 7
    vectors[[10, 500, 900]] = vectors[3]          # one vector, four texts
    vectors[[20, 21]] = vectors[700]              # one vector, three texts
    vectors[40], texts[40] = vectors[30], texts[30]   # the same text under another id
    spill = IdenticalVectors(tmp_path, 1000)
    assert spill.count == 10
    for start in range(0, 1000, 128):
        spill.add(start, vectors[start:start + 128], texts[start:start + 128])
    found = spill.find()
    assert (found.rows_shared, found.groups, found.same_text_copies) == (7, 2, 1)
    assert sorted(map(tuple, found.examples)) == [(3, 10, 500), (20, 21, 700)]
    assert not list(tmp_path.iterdir())                       # the buckets are gone


def test_a_collapsed_run_is_called_collapsed(tmp_path):
    tap = QualityTap(tmp_path, max_tokens=16)
    tap.begin(500)
    one = units(1, 8)
    for start in range(0, 500, 100):
        batch = pa.record_batch({"key": np.arange(start, start + 100, dtype=np.int64),
                                 "id": [f"p{i}" for i in range(start, start + 100)],
                                 "text_hash": np.arange(start, start + 100, dtype=np.uint64),
                                 "n_tokens": np.full(100, 16, np.int32)})
        tap.add(start, batch, np.repeat(one, 100, axis=0))
    measured = tap.finish()
    section = {"rows": 500, **measured.health.summary(),
               "identical_vectors": {"rows": measured.identical.rows_shared},
               "labels": {}}
    found = verdict.problems(section)
    assert any(p.startswith("collapsed") for p in found)
    assert any("share their exact vector" in p for p in found)
    assert any("reached the max length" in p for p in found)
    assert measured.sample.ids == [f"p{i}" for i in range(500)]


@pytest.mark.parametrize("record, field, label", [
    ({"categories": "hep-ph astro-ph.CO"}, "categories", "hep-ph"),
    ({"categories": "math.CO cs.DM"}, "categories", "math"),
    ({"categories": ""}, "categories", None),
    ({"s2fieldsofstudy": [{"category": "Physics", "source": "s2-fos-model"}]},
     "s2fieldsofstudy", "Physics"),
    ({"fieldsOfStudy": ["Medicine", "Biology"]}, "fieldsOfStudy", "Medicine"),
    ({"s2FieldsOfStudy": [{"category": "Biology", "source": "external"}]}, "s2FieldsOfStudy",
     "Biology"),
    ({"fieldsOfStudy": None}, "fieldsOfStudy", None),
    ({"venue": "  Phys.   Rev. D "}, "venue", "Phys. Rev. D"),
    ({"year": 2007}, "year", "2007"),
    ({"flag": True}, "flag", None),
])
def test_labels(record, field, label):
    assert label_of(record, field) == label


def test_the_named_field_wins_else_the_first_known_that_labels():
    assert chosen_field({"categories": 0, "fieldsOfStudy": 3}, None) == "fieldsOfStudy"
    assert chosen_field({"categories": 5}, "venue") == "venue"
    assert chosen_field({}, None) is None


def test_label_agreement_against_its_random_share():
    rng = np.random.default_rng(1)
    centres = units(4, 32, seed=2) * 4
    labels = rng.integers(0, 4, 400)
    vectors = centres[labels] + rng.normal(size=(400, 32))
    names = [f"l{x}" for x in labels]
    good = label_agreement(vectors, names)
    counts = np.bincount(labels)
    assert good.random == pytest.approx((counts * (counts - 1)).sum() / (400 * 399))
    assert good.agreement > 0.9 and good.lift > 3
    shuffled = label_agreement(vectors, list(rng.permutation(names)))
    assert abs(shuffled.agreement - shuffled.random) < 0.05
    assert label_agreement(vectors, ["x"] * 400) is None          # one label: nothing to say
    assert label_agreement(vectors[:10], names[:10]) is None      # too few papers


def test_nearest_matches_a_brute_force_search():
    vectors = units(2500, 16, seed=4)
    found = nearest(vectors, 10)
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    expected = np.argsort(-sims, axis=1, kind="stable")[:, :10]
    assert (found == expected).mean() > 0.999


def test_verdict_thresholds():
    ok = {"rows": 1000, "mean_cosine": 0.2, "identical_vectors": {"rows": 9},
          "labels": {"agreement": 0.6, "random": 0.13, "k": 10, "field": "categories"},
          "cut_by_max_length": {"share": 0.49, "max_tokens": 256}}
    assert verdict.problems(ok) == []
    assert verdict.verdict_line({**ok, "problems": []}).startswith("quality: ok (label")
    random_labels = {**ok, "labels": {"agreement": 0.18, "random": 0.13}}
    assert "no better than random" in verdict.problems(random_labels)[0]
    assert verdict.problems({**ok, "identical_vectors": {"rows": 10}})
    assert verdict.problems({**ok, "mean_cosine": 0.95})
    line = verdict.verdict_line({"problems": ["a", "b"]})
    assert line == "quality: WARNING: a; b"
