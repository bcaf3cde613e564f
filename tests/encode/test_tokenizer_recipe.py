"""The tokenize tasks get the driver's tokenizer as plain data (`TokenizerRecipe`): the same
ids transformers gives, without importing transformers or torch in the task's process."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict

import pytest
from tiny_models import tiny_roberta_tokenizer

from ray_job.encode.model.loading import bundled_model_path
from ray_job.encode.tokenize import TokenizerRecipe, load_tokenizer, texts_encoder, tokenizer_recipe

# a tokenize task's process: the recipe in, the ids out, and what it had to import
TASK = r"""
import json, sys
import pyarrow as pa
from ray_job.encode.tokenize import tokenize_table
cases, texts = json.load(open(sys.argv[1]))
table = pa.table({"key": list(range(len(texts))), "id": [str(i) for i in range(len(texts))],
                  "text": texts, "text_hash": pa.array(range(len(texts)), pa.uint64())})
ids = [tokenize_table(table, recipe, threads=1).column("input_ids").to_pylist()
       for recipe in cases]
print(json.dumps({"ids": ids, "imported": sorted(m for m in ("torch", "transformers")
                                                  if m in sys.modules)}))
"""


def expected_ids(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    return tokenizer(texts, truncation="longest_first", max_length=max_length,
                     return_attention_mask=False, return_token_type_ids=False)["input_ids"]


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory, sample_records):
    """Folders of the tokenizers a run meets: BERT's WordPiece as shipped, the same cutting
    from the left and splitting special-token text, RoBERTa's byte-level BPE."""
    base = tmp_path_factory.mktemp("tokenizers")
    bundled = str(bundled_model_path())
    odd = base / "bert-left-split"
    load_tokenizer(bundled).save_pretrained(odd)
    config = json.loads((odd / "tokenizer_config.json").read_text())
    config.update(truncation_side="left", split_special_tokens=True)
    (odd / "tokenizer_config.json").write_text(json.dumps(config))
    roberta = base / "roberta"
    tiny_roberta_tokenizer(roberta, [r["abstract"] for r in sample_records[:300]])
    return {"bert": bundled, "bert-left-split": str(odd), "roberta": str(roberta)}


def test_a_task_tokenizes_like_transformers_and_never_imports_it(tokenizers, sample_records,
                                                                 tmp_path):
    texts = [r["title"] + "[SEP]" + r["abstract"] for r in sample_records[:100]] + [
        "", " ", "[CLS] a [SEP] b", "<s> c </s>", "é" * 3000, "\u00a0\t\n x"]
    cases, expected = [], []
    for name, folder in tokenizers.items():
        for max_length in (8, 128):
            recipe = tokenizer_recipe(folder, max_length)
            assert recipe.rust is not None, name                   # sent as a Rust tokenizer
            cases.append(asdict(recipe))
            expected.append(expected_ids(load_tokenizer(folder), texts, max_length))
    assert TokenizerRecipe(**cases[2]).split_special_tokens        # bert-left-split
    (tmp_path / "cases.json").write_text(json.dumps([cases, texts]))
    out = subprocess.run([sys.executable, "-c", TASK, str(tmp_path / "cases.json")],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["imported"] == []
    for case, ids, want in zip(cases, result["ids"], expected, strict=True):
        assert ids == want, (case["source"], case["max_length"])
    assert expected[2] != expected[0]         # cutting from the left is not the same ids


def test_a_tokenizer_with_its_own_batch_encoding_is_loaded_by_the_task(monkeypatch):
    """A class that changes batch encoding has no Rust path and no Rust recipe: it is called
    through transformers, and the task loads it from the same source and revision as the
    driver."""
    from transformers import BertTokenizerFast

    from ray_job.encode.tokenize import encode_texts, rust_backend

    class Farewell(BertTokenizerFast):
        def _batch_encode_plus(self, batch_text_or_text_pairs, *args, **kwargs):
            return super()._batch_encode_plus(["goodbye" for _ in batch_text_or_text_pairs],
                                              *args, **kwargs)

    source = str(bundled_model_path())
    farewell, loaded = Farewell.from_pretrained(source), []
    assert rust_backend(farewell, 16) is None
    goodbye = farewell(["hello"])["input_ids"]
    assert encode_texts(farewell, ["hello"], 16) == goodbye
    assert goodbye != BertTokenizerFast.from_pretrained(source)(["hello"])["input_ids"]

    def load(*args):
        loaded.append(args)
        return farewell

    monkeypatch.setattr("ray_job.encode.tokenize.load_tokenizer", load)
    recipe = tokenizer_recipe(source, 16, revision="abc123")
    assert recipe.rust is None
    assert texts_encoder(recipe)(["hello"]) == farewell(["goodbye"])["input_ids"]
    assert loaded == [(source, False, "abc123", False)] * 2   # the driver, then the task
