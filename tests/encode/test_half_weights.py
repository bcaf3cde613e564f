"""Half weights (`bf16-weights`, what `auto` picks on CPUs with native bf16) keep the vectors of
fp32: min cosine >= 0.999 on the real sample with the bundled MiniLM, through the encoder."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import reference_text

from ray_job.config import JobConfig
from ray_job.encode.encoder import Encoder
from ray_job.encode.model.loading import bundled_model_path
from ray_job.encode.tokenize import load_tokenizer, tokenize_texts
from ray_job.rundir.replica import ReplicaSpec

ROWS = 64


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bf16-weights", "bf16"])
def test_bf16_keeps_min_cosine_against_fp32_on_the_real_sample(sample_records, precision):
    source = bundled_model_path()
    cfg = JobConfig.of()
    fp32 = Encoder(ReplicaSpec.of(cfg.spec, cfg.options, source, None, "cpu", "fp32"))
    half = Encoder(ReplicaSpec.of(cfg.spec, cfg.options, source, None, "cpu", precision))
    assert half.precision == precision
    held = {p.dtype for p in half.model.module.parameters()}
    assert held == {torch.bfloat16 if precision == "bf16-weights" else torch.float32}
    info = fp32.model.info
    texts = [reference_text(r) for r in sample_records[:ROWS]]
    ids = tokenize_texts(load_tokenizer(info.tokenizer_source), texts, info.max_seq_length)
    want, _ = fp32.embed_token_lists(ids)
    got, _ = half.embed_token_lists(ids)
    worst = min_cosine(got, want)
    print(f"{precision}: min cosine against fp32 over {ROWS} sample abstracts = {worst:.6f}")
    assert worst >= 0.999
    assert not np.array_equal(got, want)             # it did run in another precision


@pytest.mark.parametrize("precision, held", [("fp32", torch.float32),
                                             ("bf16-weights", torch.bfloat16)])
def test_the_weights_are_held_in_the_precisions_dtype_whatever_the_loader_returns(
        tmp_path, monkeypatch, precision, held):
    """transformers 5 loads a checkpoint in its stored dtype (an fp16 file gives fp16 weights,
    where 4.x gave fp32): the replica casts them to what its precision says, so a shard that
    says fp32 was computed in fp32."""
    from tiny_models import tiny_bert

    from ray_job.encode.model import loading as models

    original = models.BACKENDS["transformers"]

    def stored_in_fp16(*args, **kwargs):
        loaded = original(*args, **kwargs)
        loaded.module.half()
        return loaded

    monkeypatch.setitem(models.BACKENDS, "transformers", stored_in_fp16)
    folder = str(tiny_bert(tmp_path / "bert"))
    spec = JobConfig.of(model=folder, pooling="cls").spec
    loaded = models.load_model(spec, "cpu", folder, dtype=held)
    assert {p.dtype for p in loaded.module.parameters()} == {held}
    cfg = JobConfig.of(model=folder, pooling="cls")
    encoder = Encoder(ReplicaSpec.of(cfg.spec, cfg.options, folder, None, "cpu", precision))
    assert {p.dtype for p in encoder.model.module.parameters()} == {held}
