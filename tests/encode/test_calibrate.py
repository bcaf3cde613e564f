"""`--precision auto` and the replica's threads chosen by measurement (encode/calibrate.py): the
rules on given rates, the timing itself on a tiny model, the node's cache, and the driver's
choice for a run carried on (its own precision, whatever this machine would choose)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ray_job.config import JobConfig
from ray_job.encode import calibrate
from ray_job.encode.calibrate import Cache, Choice, Trial, choose_precision, choose_threads
from ray_job.encode.tokenize import texts_encoder, token_array, tokenizer_recipe
from ray_job.rundir.replica import ReplicaSpec


def test_the_fastest_faithful_precision_is_chosen():
    trials = [Trial("fp32", 2, 40.0), Trial("bf16", 2, 27.5, 0.99998),
              Trial("bf16-weights", 2, 28.7, 0.99994)]
    assert choose_precision(trials)[0] == "fp32"             # the AVX512-BF16-only Xeon
    trials = [Trial("fp32", 2, 25.0), Trial("bf16", 2, 45.0, 0.99998),
              Trial("bf16-weights", 2, 52.0, 0.99994)]
    precision, why = choose_precision(trials)
    assert precision == "bf16-weights" and "fp32 25.0" in why and "(min cosine 0.99994)" in why


def test_a_precision_that_misses_the_bar_or_the_margin_is_not_chosen():
    unfaithful = [Trial("fp32", 2, 10.0), Trial("fp16", 2, 99.0, 0.998)]
    assert choose_precision(unfaithful)[0] == "fp32"
    within_noise = [Trial("fp32", 2, 10.0), Trial("bf16", 2, 10.4, 1.0)]
    assert choose_precision(within_noise)[0] == "fp32"
    assert choose_precision([Trial("fp32", 2, 10.0), Trial("bf16", 2, 10.6, 1.0)])[0] == "bf16"


def test_threads_go_where_they_embed_the_most():
    data = 1 / 2762                                    # CPU-s a doc of read + tokenize
    assert choose_threads({2: 45.0, 1: 27.0}, 2.0, data) == 2
    assert choose_threads({2: 28.0, 1: 27.0}, 2.0, 0.04) == 1     # a heavy data path
    assert choose_threads({4: 20.0, 3: 20.0}, 4.0, 0.05) == 3     # the 4th thread buys nothing
    assert calibrate.thread_options(1) == (1,) and calibrate.thread_options(8) == (8, 7)


def test_the_candidates_are_what_the_device_runs_natively():
    assert calibrate.candidates("cpu", False) == ("fp32",)
    assert calibrate.candidates("cpu", True) == ("fp32", "bf16", "bf16-weights")
    assert calibrate.candidates("cuda", False)[:2] == ("fp32", "fp16")


def test_a_choice_round_trips_through_json():
    choice = Choice("bf16", 2, "why", (Trial("fp32", 2, 1.0), Trial("bf16", 2, 2.0, 0.9999)), 32)
    assert Choice.from_dict(json.loads(json.dumps(choice.to_dict()))) == choice


@pytest.fixture(scope="module")
def tiny_replica(tmp_path_factory, sample_records):
    from tiny_models import tiny_bert

    bert = str(tiny_bert(tmp_path_factory.mktemp("calibrate") / "bert"))
    cfg = JobConfig.of(model=bert, pooling="mean")
    replica = ReplicaSpec.of(cfg.spec, cfg.options, bert, None, "cpu", "fp32")
    texts = [" ".join(r["abstract"].split()) for r in sample_records[:64]]
    ids = token_array(texts_encoder(tokenizer_recipe(bert, 128))(texts))
    return replica, ids


def test_the_timing_measures_every_candidate_then_caches_the_choice(tiny_replica, tmp_path,
                                                                     monkeypatch):
    replica, ids = tiny_replica
    monkeypatch.setattr(calibrate, "Cache", lambda: Cache(tmp_path))
    precisions = calibrate.candidates("cpu", True)
    choice = calibrate.calibrate(replica, ids, {"weights": "sha256:t"}, precisions, (2, 1),
                                 2.0, 1 / 2762)
    timed = {(t.precision, t.threads): t for t in choice.trials}
    assert set(timed) == {*((p, 2) for p in precisions), (choice.precision, 1)}
    assert all(t.docs_per_s > 0 for t in choice.trials) and 16 <= choice.docs <= 64
    for name in precisions[1:]:
        assert timed[(name, 2)].min_cosine > 0.99
    assert choice.precision in precisions and choice.threads in (1, 2) and not choice.cached
    again = calibrate.calibrate(replica, ids, {"weights": "sha256:t"}, precisions, (2, 1),
                                2.0, 1 / 2762)
    assert again.cached and again.precision == choice.precision
    other = calibrate.calibrate(replica, ids, {"weights": "sha256:other"}, ("fp32",), (1,),
                                2.0, 1 / 2762)
    assert not other.cached and other.precision == "fp32"
    asked = calibrate.calibrate(replica, ids, {"weights": "sha256:t"}, ("bf16",), (2, 1),
                                2.0, 1 / 2762)          # --precision bf16: threads timed only
    assert asked.precision == "bf16" and asked.threads in (1, 2)
    assert {(t.precision, t.threads) for t in asked.trials} == {("bf16", 2), ("bf16", 1)}


def test_a_run_carried_on_keeps_its_precision_and_never_times(monkeypatch):
    """A resumed run takes job.json's precision (one run never mixes precisions); a run
    reusing --previous vectors takes theirs; a precision asked for is not timed."""
    from types import SimpleNamespace

    from ray_job import pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("timed")

    monkeypatch.setattr(pipeline, "calibrate_on_cluster", refuse)
    carried = SimpleNamespace(precision="fp16", precision_choice=Choice(
        "fp16", 1, "timed", (Trial("fp32", 1, 1.0),), 16).to_dict())
    plan = SimpleNamespace(threads=2)
    planned = SimpleNamespace(cfg=JobConfig.of(), previous=None)
    kept = pipeline.choose_precision(None, planned, carried, "cpu", "bf16", plan, None, 2.0)
    assert kept.precision == "fp16" and kept.trials == (Trial("fp32", 1, 1.0),)
    previous = SimpleNamespace(attrs={"precision": "bf16-weights"})
    reused = pipeline.choose_precision(None, SimpleNamespace(cfg=JobConfig.of(),
                                                             previous=previous),
                                       None, "cpu", "bf16", plan, None, 2.0)
    assert reused.precision == "bf16-weights"
    asked = SimpleNamespace(cfg=JobConfig.of(precision="fp32", threads_per_replica=2),
                            previous=None)
    assert pipeline.choose_precision(None, asked, None, "cpu", "fp32", plan, None,
                                     2.0).precision == "fp32"


def test_cosines_are_per_row():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert calibrate._min_cosine(a, np.array([[1.0, 0.0], [1.0, 1.0]])) == pytest.approx(0.7071,
                                                                                         abs=1e-4)
