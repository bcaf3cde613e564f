"""Tiny random models of the real architectures, built on the fly and saved like Hub models."""
from __future__ import annotations

from pathlib import Path

import torch

from ray_job.encode.model.loading import bundled_model_path

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
            max_position_embeddings=512)


def tiny_bert(path: Path) -> Path:
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path())
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, **TINY)).save_pretrained(path)
    return path


def tiny_adapter(base: Path, path: Path, name: str = "tiny_proximity", std: float = 0.5) -> Path:
    """A bottleneck adapter saved by `adapters`, weights randomised (N(0, std)): forgetting it
    or leaving it inactive changes the output. (The GPU check makes SPECTER2's with it.)"""
    from adapters import AutoAdapterModel

    model = AutoAdapterModel.from_pretrained(str(base))
    model.add_adapter(name, config="seq_bn")
    torch.manual_seed(1)
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if "adapters" in param_name:
                param.normal_(0, std)
    model.save_adapter(str(path), name)
    return path


def tiny_roberta_tokenizer(path: Path, texts: list[str]):
    """RoBERTa's byte-level BPE tokenizer, trained here on `texts`, saved in `path`."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe.train_from_iterator(texts, vocab_size=2000, special_tokens=specials)
    path.mkdir(parents=True)
    bpe.save_model(str(path))
    tokenizer = RobertaTokenizerFast(vocab_file=str(path / "vocab.json"),
                                     merges_file=str(path / "merges.txt"), model_max_length=128)
    tokenizer.save_pretrained(path)
    return tokenizer


def tiny_roberta_sentence_transformer(path: Path, texts: list[str]) -> Path:
    """A RoBERTa sentence-transformers model with mean pooling and a BPE tokenizer trained here."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import RobertaConfig, RobertaModel

    hf_dir = path / "hf"
    tokenizer = tiny_roberta_tokenizer(hf_dir, texts)
    torch.manual_seed(2)
    config = RobertaConfig(vocab_size=tokenizer.vocab_size, pad_token_id=1, **{
        **TINY, "max_position_embeddings": 130})
    RobertaModel(config).save_pretrained(hf_dir)
    word = models.Transformer(str(hf_dir), max_seq_length=128)
    pooling = models.Pooling(word.get_embedding_dimension(), "mean")
    st_dir = path / "st"
    SentenceTransformer(modules=[word, pooling]).save(str(st_dir))
    return st_dir


def tiny_st_with_dense(base: Path, path: Path) -> Path:
    """A sentence-transformers model over `base` with two pooling modes concatenated, a Dense
    projection (64 -> 16) and Normalize: every module that decides the output's size."""
    from sentence_transformers import SentenceTransformer, models

    word = models.Transformer(str(base), max_seq_length=200)
    pooling = models.Pooling(word.get_embedding_dimension(), ("cls", "mean"))
    torch.manual_seed(3)
    dense = models.Dense(2 * word.get_embedding_dimension(), 16)
    SentenceTransformer(modules=[word, pooling, dense, models.Normalize()]).save(str(path))
    return path
