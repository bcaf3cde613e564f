"""The model's random-text cosine: random strings in the model's own vocabulary, embedded by
a real Ray task in a replica's place, cached; a probe that fails is one line and no number,
never a failed run."""
from __future__ import annotations

import dataclasses
import uuid

import pytest

from ray_job.encode.model.location import resolve_model_source
from ray_job.encode.tokenize import tokenizer_recipe
from ray_job.quality import baseline
from ray_job.rundir.rundir import RunDir


@pytest.fixture(scope="module")
def recipe():
    return tokenizer_recipe(resolve_model_source(None), 256)


def test_probe_texts_are_fixed_random_vocabulary_without_special_tokens(recipe):
    texts = baseline.probe_texts(recipe)
    assert len(texts) == baseline.PROBE_TEXTS and texts == baseline.probe_texts(recipe)
    assert len(set(texts)) == len(texts)
    assert not any("[CLS]" in t or "[SEP]" in t or "[PAD]" in t for t in texts)


def test_the_runs_probe_is_cached_per_model_and_settings(full_sample_run, recipe):
    """The run measured it in a Ray task (its report holds the number); the same model and
    settings now come from the cache, with no Ray at all; another prompt is another key."""
    job = RunDir.at(full_sample_run[0]).load_job()
    replica, identity = job.replica(), dict(job.identity)
    measured = full_sample_run[1]["quality"]["random_text_cosine"]
    assert 0 < measured < 1
    assert baseline.measure_baseline(None, replica, identity, recipe, 1, 0) == pytest.approx(
        measured, abs=1e-6)
    ids = baseline.probe_ids(recipe)
    moved = dataclasses.replace(replica, source="/elsewhere/the/same/model", model="x")
    assert baseline.cache_key(moved, identity, ids) == baseline.cache_key(replica, identity, ids)
    prompted = baseline.probe_ids(dataclasses.replace(recipe, prompt="query: "))
    assert baseline.cache_key(replica, identity, prompted) != baseline.cache_key(
        replica, identity, ids)
    pooled = dataclasses.replace(replica, pooling="cls")
    assert baseline.cache_key(pooled, identity, ids) != baseline.cache_key(replica, identity, ids)


def test_a_probe_that_fails_is_one_line_and_no_number(local_ray, full_sample_run, recipe,
                                                      capsys):
    import ray

    replica = dataclasses.replace(RunDir.at(full_sample_run[0]).load_job().replica(),
                                  source="/nonexistent/model")
    identity = {"weights": f"sha256:{uuid.uuid4().hex}"}        # a model never probed
    assert baseline.measure_baseline(ray, replica, identity, recipe, 1, 0) is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "random-text cosine was not measured" in err[0]


def test_a_small_run_uses_a_cached_number_but_loads_no_model_for_one(full_sample_run, recipe):
    job = RunDir.at(full_sample_run[0]).load_job()
    unknown = {"weights": f"sha256:{uuid.uuid4().hex}"}
    small = baseline.PROBE_MIN_ROWS - 1
    assert baseline.measure_baseline(None, job.replica(), unknown, recipe, 1, 0, small) is None
    cached = baseline.measure_baseline(None, job.replica(), dict(job.identity), recipe, 1, 0,
                                       small)
    assert cached == pytest.approx(full_sample_run[1]["quality"]["random_text_cosine"], abs=1e-6)
