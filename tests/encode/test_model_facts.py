"""The driver learns a model's facts from its files (`model_facts.describe`), never loading it:
the facts equal what the loaded model says (`load_model(...).info`)."""
from __future__ import annotations

import dataclasses
import os

os.environ["HF_HUB_DISABLE_XET"] = "1"      # before huggingface_hub is imported (see hub_server)

import hub_server as hub_server_module
import pytest
import torch
from conftest import reference_text
from tiny_models import (
    tiny_adapter,
    tiny_bert,
    tiny_roberta_sentence_transformer,
    tiny_st_with_dense,
)

from ray_job.config import JobConfig, apply_preset
from ray_job.encode.model.checkpoint import weight_files
from ray_job.encode.model.facts import describe
from ray_job.encode.model.loading import bundled_model_path, load_model, resolve_model_source
from ray_job.pipeline import describe_model

hub_server = hub_server_module.hub_server


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, sample_records):
    root = tmp_path_factory.mktemp("facts")
    bert = tiny_bert(root / "bert")
    return {"bert": bert, "adapter": tiny_adapter(bert, root / "adapter"),
            "roberta": tiny_roberta_sentence_transformer(
                root / "roberta", [reference_text(r) for r in sample_records]),
            "dense": tiny_st_with_dense(bert, root / "dense")}


CASES = {   # name -> config settings ({bert}, {adapter}... are the tiny models' folders)
    "bundled MiniLM, sentence-transformers": {},
    "bundled MiniLM, shorter max_seq_length": {"max_seq_length": 100},
    "tiny BERT, transformers, cls": {"model": "{bert}", "pooling": "cls"},
    "tiny BERT, transformers, mean + normalize": {"model": "{bert}", "pooling": "mean",
                                                  "normalize": True},
    "tiny BERT + tiny adapter (specter2 recipe)": {"preset": "specter2", "model": "{bert}",
                                                   "adapter": "{adapter}"},
    "tiny BERT wrapped by sentence-transformers": {"model": "{bert}"},
    "tiny RoBERTa sentence-transformer": {"model": "{roberta}"},
    "tiny RoBERTa, transformers backend (position limit)": {"model": "{roberta}",
                                                            "backend": "transformers"},
    "tiny ST with 2 poolings + Dense + Normalize": {"model": "{dense}", "max_seq_length": 1000},
}


def config(settings: dict, tiny: dict):
    """The output spec of these settings (what model loading and facts read)."""
    data = {k: v.format(**tiny) if isinstance(v, str) else v for k, v in settings.items()}
    return JobConfig.from_dict(apply_preset(data)).spec


@pytest.mark.parametrize("case", CASES)
def test_facts_from_files_equal_the_loaded_models_info(case, tiny):
    cfg = config(CASES[case], tiny)
    source = resolve_model_source(cfg.model)
    assert describe(cfg, source) == load_model(cfg, source=source).info


def test_roberta_facts_keep_its_own_length_limits(tiny):
    st = describe(config({"model": "{roberta}"}, tiny), str(tiny["roberta"]))
    plain = describe(config({"model": "{roberta}", "backend": "transformers"}, tiny),
                     str(tiny["roberta"]))
    assert (st.max_seq_length, plain.max_seq_length) == (128, 128)   # 130 positions - (pad 1 + 1)
    assert st.sep_token == "</s>" and st.pad_token_id == 1


@pytest.fixture
def no_model_construction(monkeypatch):
    """Building any torch module (a model, a sentence-transformers module) fails."""
    import adapters
    import sentence_transformers
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("the driver built a torch module")

    monkeypatch.setattr(torch.nn.Module, "__init__", refuse)
    monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", classmethod(refuse))
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", refuse)
    monkeypatch.setattr(adapters.AutoAdapterModel, "from_pretrained", refuse)
    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", refuse)


def test_the_driver_never_builds_the_model(tiny, no_model_construction):
    for case, settings in CASES.items():
        spec = config(settings, tiny)
        job = JobConfig.of(**dataclasses.asdict(spec))
        assert describe_model(job, resolve_model_source(spec.model)).dim > 0, case
    with pytest.raises(AssertionError, match="built a torch module"):
        load_model(JobConfig.of().spec, source=bundled_model_path())   # the guard does catch a load


def test_hub_names_work_the_same_way_without_downloading_weights(tiny, hub_server, monkeypatch,
                                                                 tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    for repo, folder in (("org/tiny-roberta", tiny["roberta"]), ("org/tiny-dense", tiny["dense"])):
        for path in folder.rglob("*"):
            if path.is_file():
                hub_server.add_file(repo, path.relative_to(folder).as_posix(), path.read_bytes(),
                                    repo_type="model")
        local = load_model(JobConfig.of(model=str(folder)).spec, source=str(folder)).info
        from_hub = describe(JobConfig.of(model=repo).spec, repo)
        assert from_hub.to_dict() == {**local.to_dict(), "name": repo, "source": repo,
                                      "tokenizer_source": repo}
    weights = [r for r in hub_server.requests if r.path.endswith(".safetensors")
               or r.kind == "lfs_download"]
    assert weights and all("range" in r.headers for r in weights)     # headers only
    assert not list((tmp_path / "cache").rglob("*.safetensors"))


def test_weight_files_prefer_safetensors_and_skip_other_bins():
    names = ["model.safetensors", "pytorch_model.bin", "training_args.bin", "pytorch_adapter.bin",
             "pytorch_model_head.bin", "model_head.safetensors", "sub/pytorch_model.bin"]
    assert weight_files(names) == ["model.safetensors", "model_head.safetensors",
                                   "pytorch_adapter.bin", "sub/pytorch_model.bin"]
