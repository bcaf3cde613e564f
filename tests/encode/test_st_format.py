"""The sentence-transformers format read natively (`st_format`) gives the very embeddings the
sentence-transformers library gives; a model it does not cover goes to the library."""
from __future__ import annotations

import json
import os
import subprocess
import sys

os.environ["HF_HUB_DISABLE_XET"] = "1"      # before huggingface_hub is imported (see hub_server)

import hub_server as hub_server_module
import pytest
import torch
from conftest import reference_text
from tiny_models import tiny_bert, tiny_roberta_sentence_transformer, tiny_st_with_dense

from ray_job.config import JobConfig
from ray_job.encode.model import loading as models
from ray_job.encode.model.loading import bundled_model_path, load_model
from ray_job.encode.model.st_format import ACTIVATION_NAMES, NotNative, native_modules
from ray_job.encode.model.st_modules import ACTIVATIONS, NativeSentenceModel, st_pool

hub_server = hub_server_module.hub_server


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, sample_records):
    root = tmp_path_factory.mktemp("stformat")
    bert = tiny_bert(root / "bert")
    return {"bundled": bundled_model_path(), "bert": str(bert),
            "roberta": str(tiny_roberta_sentence_transformer(
                root / "roberta", [reference_text(r) for r in sample_records])),
            "dense": str(tiny_st_with_dense(bert, root / "dense"))}


def token_batch(loaded, texts):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(loaded.info.tokenizer_source)
    batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt",
                      max_length=loaded.info.max_seq_length, return_token_type_ids=False)
    return batch["input_ids"], batch["attention_mask"]


def embed(loaded, ids, mask):
    with torch.inference_mode():
        return loaded.embed(ids, mask)


@pytest.mark.parametrize("name", ["bundled", "roberta", "dense"])
def test_native_embeddings_are_the_librarys_bit_for_bit(name, tiny, sample_records):
    source = tiny[name]
    spec = JobConfig.of(model=source).spec
    native = load_model(spec, source=source)
    library = models.load_with_sentence_transformers(spec.model, source, "cpu", spec)
    assert isinstance(native.module, NativeSentenceModel)
    assert native.info == library.info
    ids, mask = token_batch(native, [reference_text(r) for r in sample_records[:48]])
    assert torch.equal(embed(native, ids, mask), embed(library, ids, mask))


def test_a_plain_checkpoint_goes_to_the_library(tiny):
    with pytest.raises(NotNative, match="modules.json"):
        native_modules(__import__("pathlib").Path(tiny["bert"]))
    loaded = load_model(JobConfig.of(model=tiny["bert"]).spec, source=tiny["bert"])
    assert not isinstance(loaded.module, NativeSentenceModel)
    assert loaded.info.pooling == "mean"


@pytest.mark.parametrize("mode", ["cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean",
                                  "lasttoken"])
def test_each_pooling_mode_equals_the_librarys(mode):
    from sentence_transformers.models import Pooling

    torch.manual_seed(0)
    tokens = torch.randn(5, 7, 8)
    lengths = torch.tensor([7, 1, 3, 6, 2])
    mask = (torch.arange(7)[None, :] < lengths[:, None]).long()
    expected = Pooling(8, mode)({"token_embeddings": tokens, "attention_mask": mask})
    assert torch.equal(st_pool(tokens, mask, (mode,)), expected["sentence_embedding"])


def edited_copy(tmp_path, source, edit):
    """A copy of the model folder `source` with `edit(folder)` applied."""
    import shutil

    folder = tmp_path / "edited"
    shutil.copytree(source, folder)
    edit(folder)
    return folder


def set_json(path, **values):
    data = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**data, **values}))


@pytest.mark.parametrize("edit, why", [
    (lambda f: set_json(f / "config.json", model_type="xlnet"), "architecture"),
    (lambda f: set_json(f / "sentence_bert_config.json",
                        model_args={"attn_implementation": "eager"}),
     "Transformer settings"),
    (lambda f: set_json(f / "2_Dense" / "config.json",
                        activation_function="torch.nn.modules.activation.GELU"), "Dense"),
    (lambda f: (f / "modules.json").write_text(json.dumps(
        json.loads((f / "modules.json").read_text())[:2] + [
            {"idx": 2, "name": "2", "path": "2_LayerNorm",
             "type": "sentence_transformers.models.LayerNorm"}])), "modules"),
])
def test_what_the_native_reader_does_not_cover_goes_to_the_library(edit, why, tiny, tmp_path):
    folder = edited_copy(tmp_path, tiny["dense"], edit)
    with pytest.raises(NotNative, match=why):
        native_modules(folder)


def test_a_hub_model_is_read_natively_with_its_dense_weights(tiny, hub_server, monkeypatch,
                                                             tmp_path, sample_records):
    from pathlib import Path

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    folder = Path(tiny["dense"])
    for path in folder.rglob("*"):
        if path.is_file():
            hub_server.add_file("org/tiny-dense", path.relative_to(folder).as_posix(),
                                path.read_bytes(), repo_type="model")
    local = load_model(JobConfig.of(model=str(folder)).spec, source=str(folder))
    hub = load_model(JobConfig.of(model="org/tiny-dense").spec, source="org/tiny-dense")
    assert isinstance(hub.module, NativeSentenceModel)
    ids, mask = token_batch(local, [reference_text(r) for r in sample_records[:16]])
    assert torch.equal(embed(hub, ids, mask), embed(local, ids, mask))


def test_a_replica_of_the_bundled_model_does_not_import_sentence_transformers():
    """Its start-up stays lean: the bundled model is read natively."""
    code = ("import sys; from ray_job.config import JobConfig; "
            "from ray_job.encode.encoder import Encoder; "
            "from ray_job.encode.model.loading import bundled_model_path; "
            "from ray_job.rundir.replica import ReplicaSpec; cfg = JobConfig.of(); "
            "Encoder(ReplicaSpec.of(cfg.spec, cfg.options, bundled_model_path(), None, 'cpu', "
            "'fp32')); "
            "print('sentence_transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_activation_the_reader_accepts_has_a_module_to_run_it():
    """The file reader (no torch, on the driver) and the forward pass (st_modules) name the
    same Dense activations."""
    assert set(ACTIVATION_NAMES) == set(ACTIVATIONS)
