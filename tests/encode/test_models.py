"""Every model path against a direct reference computation written here, on the real sample."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from conftest import clean, reference_text
from tiny_models import tiny_adapter, tiny_bert, tiny_roberta_sentence_transformer

from ray_job.config import build_config
from ray_job.pipeline import run

N = 120


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    base = tiny_bert(root / "bert")
    return {"bert": base, "adapter": tiny_adapter(base, root / "adapter")}


def embeddings(out):
    with h5py.File(out / "embeddings.h5") as h5:
        return h5["ids"][:], h5["embeddings"][:], dict(h5.attrs)


def run_cli_like(tmp_path, sample_path, **settings):
    cfg = build_config(None, {"inputs": [str(sample_path)], "output": str(tmp_path / "out"),
                              "limit": N, "precision": "fp32", **settings})
    run(cfg)
    return embeddings(tmp_path / "out")


def test_specter2_recipe_base_plus_active_adapter_cls(local_ray, sample_path, sample_records,
                                                       tiny_dir, tmp_path):
    from adapters import AutoAdapterModel
    from transformers import AutoTokenizer, BertModel

    ids, emb, attrs = run_cli_like(tmp_path, sample_path, preset="specter2",
                                   model=str(tiny_dir["bert"]), adapter=str(tiny_dir["adapter"]))
    # allenai's recipe, as the Semantic Scholar notebook runs it
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_dir["bert"]))
    model = AutoAdapterModel.from_pretrained(str(tiny_dir["bert"]))
    model.load_adapter(str(tiny_dir["adapter"]), load_as="specter2", set_active=True)
    papers = sample_records[:N]
    texts = [d["title"] + tokenizer.sep_token + (d.get("abstract") or "") for d in papers]
    inputs = tokenizer(texts, padding=True, truncation=True, return_tensors="pt",
                       return_token_type_ids=False, max_length=512)
    with torch.inference_mode():
        expected = model(**inputs).last_hidden_state[:, 0, :].numpy()
        plain = BertModel.from_pretrained(str(tiny_dir["bert"]))
        without_adapter = plain(**inputs).last_hidden_state[:, 0].numpy()
    assert ids.tolist() == [d["id"].encode() for d in papers]
    np.testing.assert_allclose(emb, expected, rtol=1e-4, atol=1e-4)
    assert np.abs(emb - without_adapter).max() > 0.1      # the adapter is loaded and active
    assert attrs["pooling"] == "cls" and not attrs["normalized"]


def test_plain_transformers_with_mean_pooling_and_normalize(local_ray, sample_path, sample_records,
                                                            tiny_dir, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    _, emb, attrs = run_cli_like(tmp_path, sample_path, model=str(tiny_dir["bert"]),
                                 pooling="mean", normalize=True, text="{abstract}")
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_dir["bert"]))
    model = AutoModel.from_pretrained(str(tiny_dir["bert"]))
    inputs = tokenizer([clean(d["abstract"]) for d in sample_records[:N]], padding=True,
                       truncation=True, max_length=512, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**inputs).last_hidden_state
    mask = inputs["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    np.testing.assert_allclose(emb, expected, rtol=1e-4, atol=1e-4)
    assert attrs["pooling"] == "mean" and attrs["normalized"]


def test_roberta_sentence_transformer_matches_its_encode(local_ray, sample_path, sample_records,
                                                         tmp_path):
    from sentence_transformers import SentenceTransformer

    texts = [reference_text(r) for r in sample_records]
    st_dir = tiny_roberta_sentence_transformer(tmp_path / "roberta", texts)
    _, emb, attrs = run_cli_like(tmp_path, sample_path, model=str(st_dir))
    reference = SentenceTransformer(str(st_dir), device="cpu")
    expected = reference.encode([t.replace("[SEP]", "</s>") for t in texts[:N]], batch_size=32)
    np.testing.assert_allclose(emb, expected, rtol=1e-4, atol=1e-4)
    assert attrs["pooling"] == "mean" and attrs["max_seq_length"] == 128
