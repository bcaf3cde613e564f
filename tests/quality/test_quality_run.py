"""The quality section of real runs of the real arXiv sample: the bundled model's label
agreement clearly above random, a deliberately broken setting scoring lower and warned
about, `ray-embed report` and `compare` on them, finalize again keeping the random-text
cosine."""
from __future__ import annotations

import json

import pytest
from conftest import copy_run

from ray_job import open_run
from ray_job.config import JobConfig
from ray_job.pipeline import run
from ray_job.quality.sample_file import read_sample
from ray_job.rundir.rundir import RunDir


@pytest.fixture(scope="module")
def short_run(local_ray, sample_path, tmp_path_factory):
    """The first 300 papers cut to 16 tokens: most of each abstract never embedded."""
    out = tmp_path_factory.mktemp("short")
    return out, run(JobConfig.of(inputs=(str(sample_path),), output=str(out), limit=300,
                                 max_seq_length=16, precision="fp32"))


def test_the_bundled_model_on_the_real_sample(full_sample_run):
    out, report = full_sample_run
    quality = report["quality"]
    labels = quality["labels"]
    assert labels["field"] == "categories" and labels["papers"] == 1000
    assert labels["agreement"] > 3 * labels["random"] and labels["agreement"] > 0.5
    assert quality["problems"] == [] and quality["verdict"].startswith("quality: ok")
    assert quality["norms"]["min"] == pytest.approx(1, abs=1e-4)
    assert 0 < quality["mean_cosine"] < 0.5
    assert quality["random_text_cosine"] is not None
    assert quality["identical_vectors"]["rows"] == 0
    assert 0 < quality["cut_by_max_length"]["share"] < 0.5
    sample = read_sample(RunDir.at(out))
    assert len(sample.ids) == 1000 and sample.vectors.shape == (1000, 384)
    assert sum(label is not None for label in sample.labels) == 1000
    assert json.loads((out / "report.json").read_text())["quality"] == quality
    assert open_run(out).quality == quality


def test_a_16_token_cut_scores_lower_and_is_warned_about(short_run, full_sample_run,
                                                         ray_embed, tmp_path):
    out, report = short_run
    quality = report["quality"]
    assert quality["cut_by_max_length"]["share"] > 0.95
    assert quality["verdict"].startswith("quality: WARNING")
    assert "reached the max length (16 tokens)" in quality["verdict"]
    shown = ray_embed("report", str(out), cwd=tmp_path)
    assert shown.returncode == 0
    assert shown.stdout.strip().splitlines()[-1] == quality["verdict"]
    compared = ray_embed("compare", str(out), str(full_sample_run[0]), "--json", "--show", "3",
                         cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    result = json.loads(compared.stdout)
    short, full = (r["label_agreement"]["agreement"] for r in result["runs"])
    assert result["papers"] == 300 and short < full
    assert 0 < result["neighbour_overlap"]["mean_jaccard"] < 1
    assert len(result["disagreements"]) == 3 and all(d["title"] for d in result["disagreements"])
    table = ray_embed("compare", str(out), str(full_sample_run[0]), cwd=tmp_path)
    assert "label agreement" in table.stdout and "where they disagree most" in table.stdout


def test_compare_refuses_two_corpora_and_a_run_without_a_report(short_run, finished_run,
                                                                ray_embed, tmp_path):
    other = ray_embed("compare", str(short_run[0]), str(finished_run), cwd=tmp_path)
    assert other.returncode != 0 and "same corpus" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1
    missing = ray_embed("report", str(tmp_path), cwd=tmp_path)
    assert missing.returncode != 0 and "not a run directory" in missing.stderr
    nowhere = ray_embed("compare", str(tmp_path / "nowhere"), str(short_run[0]), cwd=tmp_path)
    assert nowhere.returncode == 2 and "not a run directory" in nowhere.stderr


def test_finalize_again_keeps_the_random_text_cosine(full_sample_run, ray_embed, tmp_path):
    out = copy_run(full_sample_run[0], tmp_path / "again")
    done = ray_embed("finalize", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("quality: ok")
    again = json.loads((out / "report.json").read_text())["quality"]
    first = full_sample_run[1]["quality"]
    assert again["random_text_cosine"] == first["random_text_cosine"]
    assert again["labels"] == first["labels"] and again["mean_cosine"] == pytest.approx(
        first["mean_cosine"], abs=1e-9)


@pytest.mark.slow
def test_cls_pooling_on_a_mean_pooled_model_scores_lower(local_ray, sample_path,
                                                         full_sample_run, tmp_path):
    report = run(JobConfig.of(inputs=(str(sample_path),), output=str(tmp_path / "cls"),
                              backend="transformers", pooling="cls", precision="fp32"))
    cls_labels = report["quality"]["labels"]
    assert cls_labels["agreement"] < full_sample_run[1]["quality"]["labels"]["agreement"]
