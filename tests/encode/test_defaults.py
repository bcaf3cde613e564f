"""Defaults that follow from the model and the node (encode/model/defaults.py): the rules, what a
user gives winning over them, and the CPU defaults unchanged."""
from __future__ import annotations

import pytest

from ray_job.config import JobConfig
from ray_job.encode.model.defaults import (
    CPU_MAX_BATCH_TOKENS,
    GPU_BUDGETS,
    MAX_REPLICAS_PER_GPU,
    ModelSize,
    Node,
    activation_gib,
    choose_defaults,
    typical_tokens,
)
from ray_job.encode.model.shape import ModelShape
from ray_job.encode.model.sizing import job_defaults, node_of, with_defaults

MINILM = ModelSize(ModelShape(6, 384, 1536, 12), 91_000_000, 256, 176.0)
BERT_BASE = ModelSize(ModelShape(12, 768, 3072, 12), 440_000_000, 512, 230.0)
ROBERTA_LARGE = ModelSize(ModelShape(24, 1024, 4096, 16), 1_420_000_000, 128, 128.0)
TINY = ModelSize(ModelShape(2, 32, 37, 2), 4_000_000, 512, 230.0)


@pytest.mark.parametrize("model", [MINILM, BERT_BASE, ROBERTA_LARGE, TINY])
@pytest.mark.parametrize("bf16", [True, False])
def test_cpu_defaults_are_what_they_always_were(model, bf16):
    chosen = choose_defaults(model, Node("cpu", native_bf16=bf16))
    assert chosen.max_batch_tokens == CPU_MAX_BATCH_TOKENS == 16384
    assert chosen.precision == ("bf16" if bf16 else "fp32")
    assert chosen.replicas_per_gpu == 1 and chosen.tokenize_cpus_per_gpu is None


def test_smaller_models_get_more_replicas_per_gpu_and_more_cpus_per_gpu():
    node = Node("cuda", 32.0, "H100")
    chosen = {m: choose_defaults(m, node) for m in (TINY, MINILM, BERT_BASE, ROBERTA_LARGE)}
    replicas = [chosen[m].replicas_per_gpu for m in (TINY, MINILM, BERT_BASE, ROBERTA_LARGE)]
    assert replicas == sorted(replicas, reverse=True) and replicas[0] > replicas[-1] == 1
    assert replicas[0] == MAX_REPLICAS_PER_GPU
    cpus = [chosen[m].tokenize_cpus_per_gpu for m in (TINY, MINILM, BERT_BASE, ROBERTA_LARGE)]
    assert cpus == sorted(cpus, reverse=True) and cpus[-1] >= 2
    for _model, picked in chosen.items():
        assert picked.precision == "fp16" and picked.max_batch_tokens in GPU_BUDGETS
        assert len(picked.why) == 4


def test_replicas_are_capped_by_the_cpus_and_the_memory_of_the_node():
    assert choose_defaults(TINY, Node("cuda", 2.0, "H100")).replicas_per_gpu == 1
    assert choose_defaults(TINY, Node("cuda", 3.0, "H100")).replicas_per_gpu == 2
    huge = ModelSize(ModelShape(48, 4096, 16384, 32), 8 * 2**30, 512, 230.0)   # 2B params
    on_t4 = choose_defaults(huge, Node("cuda", 16.0, "T4"))
    assert on_t4.precision == "fp16-weights"          # fp32 weights: half the card's memory
    assert on_t4.replicas_per_gpu == 1


def test_the_token_budget_fits_the_memory_left_beside_the_weights():
    big = choose_defaults(ROBERTA_LARGE, Node("cuda", 16.0, "H200")).max_batch_tokens
    small = choose_defaults(ROBERTA_LARGE, Node("cuda", 16.0, "T4")).max_batch_tokens
    assert big == max(GPU_BUDGETS) and small <= big
    assert activation_gib(ROBERTA_LARGE, small) < 16 * 0.8 / 2
    unknown = choose_defaults(BERT_BASE, Node("cuda", 16.0, None))
    assert unknown.max_batch_tokens in GPU_BUDGETS
    assert unknown.gpu_docs_per_s < choose_defaults(BERT_BASE,
                                                    Node("cuda", 16.0, "H100")).gpu_docs_per_s


def test_a_value_the_user_gives_wins_and_an_unset_one_is_chosen():
    chosen = choose_defaults(MINILM, Node("cuda", 32.0, "H100"))
    unset = with_defaults(JobConfig.of(), chosen)
    assert unset.options.max_batch_tokens == chosen.max_batch_tokens
    assert unset.options.gpus_per_replica == pytest.approx(1 / chosen.replicas_per_gpu)
    given = with_defaults(JobConfig.of(max_batch_tokens=4096, gpus_per_replica=0.25), chosen)
    assert (given.options.max_batch_tokens, given.options.gpus_per_replica) == (4096, 0.25)


def test_the_node_comes_from_the_clusters_resources():
    node = node_of({"CPU": 64.0, "GPU": 4.0, "accelerator_type:H100": 4.0}, "cuda")
    assert (node.cpus_per_gpu, node.gpu) == (16.0, "H100")
    assert node_of({"CPU": 2.0}, "cpu").cpus_per_gpu == 0.0


def test_the_bundled_models_defaults_come_from_its_files():
    from ray_job.encode.model.facts import describe
    from ray_job.encode.model.loading import bundled_model_path

    info = describe(JobConfig.of().spec, bundled_model_path())
    on_gpu = job_defaults(info, Node("cuda", 16.0, "H100"), 512)
    assert on_gpu.precision == "fp16" and on_gpu.replicas_per_gpu >= 1
    assert job_defaults(info, Node("cpu"), 512).max_batch_tokens == 16384
    assert typical_tokens(128) == 128 and typical_tokens(512) == 230
