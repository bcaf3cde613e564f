"""The models the GPU check measures, each saved as a folder the replica loads as a user's.

* `minilm`: the bundled all-MiniLM-L6-v2 with its real weights. They travel to the GPU machine
  in fp16 (45 MB, `gpucheck.carry`) and are written back as fp32 here, so the replica loads
  an fp32 checkpoint as it does in production; the fp32 reference is that rounded model.
* `bert-base`, `bert-base-adapter`: BERT-base (12 x 768, 512 tokens, CLS pooling), the size of
  `allenai/specter2_base`, with random weights and the MiniLM tokenizer (the same WordPiece
  scheme; SPECTER2's own vocabulary is 31,090 words against 30,522, a rounding error in FLOPs);
  the adapter model adds a random `seq_bn` bottleneck adapter (SPECTER2's kind) with `adapters`.
* `roberta-large`: RoBERTa-large (24 x 1024, 128 tokens, mean pooling + Normalize), the shape
  of `all-roberta-large-v1`, random weights, with a byte-level BPE tokenizer trained here on the
  sample's texts (the real one is not in any package).
* `qwen3-0.6b`: a decoder of Qwen3-Embedding-0.6B's shape (28 x 1024, 16 query heads of 128 and
  8 key-value heads, SwiGLU 3072, its 151,669-word embedding table), random weights, saved as
  Qwen publishes it: last-token pooling + Normalize, left padding, an <|endoftext|> the
  tokenizer appends, the query instruction; a byte-level BPE trained on the sample.

`--dry-run` builds the same kinds at a tiny size (`TINY`): same code, same lengths.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import torch

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.txt")
ST_SMALL_FILES = ("config.json", "modules.json", "sentence_bert_config.json",
                  "config_sentence_transformers.json", "1_Pooling/config.json", *TOKENIZER_FILES)
ROBERTA_VOCAB = 50265


@dataclass(frozen=True)
class ModelSpec:
    key: str
    label: str
    arch: str                  # minilm | bert | roberta
    layers: int
    hidden: int
    heads: int
    intermediate: int
    max_len: int
    adapter: bool = False
    kv_heads: int = 0          # a decoder's key-value heads (0: as many as `heads`)
    head_dim: int = 0          # a decoder's head width (0: hidden / heads)
    vocab: int = 0             # a decoder's embedding table (0: its tokenizer's)


FULL = {
    "minilm": ModelSpec("minilm", "all-MiniLM-L6-v2, real weights", "minilm", 6, 384, 12, 1536,
                        256),
    "bert-base": ModelSpec("bert-base", "BERT-base (SPECTER2's size), random", "bert", 12, 768,
                           12, 3072, 512),
    "bert-base-adapter": ModelSpec("bert-base-adapter", "BERT-base + seq_bn adapter "
                                   "(SPECTER2), random", "bert", 12, 768, 12, 3072, 512, True),
    "roberta-large": ModelSpec("roberta-large", "RoBERTa-large (all-roberta-large-v1's "
                               "shape), random", "roberta", 24, 1024, 16, 4096, 128),
    "qwen3-0.6b": ModelSpec("qwen3-0.6b", "Qwen3-Embedding-0.6B's shape (decoder, last "
                            "token), random", "qwen3", 28, 1024, 16, 3072, 512, kv_heads=8,
                            head_dim=128, vocab=151669),
}
# dry runs: every model tiny and random, MiniLM too (fp16 is emulated on CPUs: the real
# MiniLM's fp16 measurements alone took minutes); the real weights' fp16 round trip has a
# test of its own (tests/estimate/test_gpu_check.py)
TINY = {k: replace(s, layers=2, hidden=32, heads=2, intermediate=37,
                   **({"kv_heads": 1, "head_dim": 16, "vocab": 0} if s.arch == "qwen3" else {}))
        for k, s in FULL.items()}
QWEN3_QUERY = ("Instruct: Given a web search query, retrieve relevant passages that answer the "
               "query\nQuery:")


def job_settings(spec: ModelSpec, folder: Path, adapter: Path | None = None) -> dict:
    """The flat job settings a user would give for this model (`JobConfig.of(**...)`)."""
    if spec.arch == "bert":
        settings = {"model": str(folder), "backend": "transformers", "pooling": "cls",
                    "max_seq_length": spec.max_len}
        return {**settings, "adapter": str(adapter)} if adapter else settings
    return {"model": str(folder)}


def minilm_folder(carried: Path | None, scratch: Path) -> Path:
    """The bundled model as an fp32 folder: from the carried fp16 copy where there is one,
    else the installed package itself."""
    if carried is None:
        from ray_job.encode.model.loading import bundled_model_path

        return Path(bundled_model_path())
    return converted_copy(carried, scratch / "minilm", torch.float32)


def converted_copy(source: Path, out: Path, dtype: torch.dtype) -> Path:
    """A sentence-transformers folder's small files and its weights cast to `dtype` (integer
    tensors, such as position ids, as they are)."""
    from safetensors.torch import load_file, save_file

    copy_files(source, out, ST_SMALL_FILES)
    state = load_file(str(source / "model.safetensors"))
    save_file({k: v.to(dtype).contiguous() if v.is_floating_point() else v
               for k, v in state.items()}, str(out / "model.safetensors"),
              metadata={"format": "pt"})
    return out


def copy_files(source: Path, target: Path, names) -> None:
    for name in names:
        if (source / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, target / name)


def bert_folder(spec: ModelSpec, tokenizer_from: Path, scratch: Path, device: str) -> Path:
    from transformers import BertConfig, BertModel

    out = scratch / spec.key
    copy_files(tokenizer_from, out, TOKENIZER_FILES)
    vocab = json.loads((tokenizer_from / "config.json").read_text())["vocab_size"]
    config = BertConfig(vocab_size=vocab, hidden_size=spec.hidden,
                        num_hidden_layers=spec.layers, num_attention_heads=spec.heads,
                        intermediate_size=spec.intermediate, max_position_embeddings=512)
    save_random(BertModel, config, out, device, seed=0)
    return out


def tiny_minilm_folder(spec: ModelSpec, tokenizer_from: Path, scratch: Path) -> Path:
    """MiniLM's layout (sentence-transformers folder, mean pooling, Normalize) at `spec`'s
    size with random weights: the dry run's stand-in for the real weights."""
    out = bert_folder(spec, tokenizer_from, scratch, "cpu")
    write_st_modules(out, spec.hidden, spec.max_len)
    return out


def roberta_folder(spec: ModelSpec, texts: list[str], scratch: Path, device: str) -> Path:
    """A sentence-transformers folder like all-roberta-large-v1's: the model at its root,
    mean pooling, Normalize."""
    from transformers import RobertaConfig, RobertaModel

    out = scratch / spec.key
    tokenizer = bpe_tokenizer(out, texts, spec.max_len)
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=spec.hidden,
                           num_hidden_layers=spec.layers, num_attention_heads=spec.heads,
                           intermediate_size=spec.intermediate, pad_token_id=1,
                           bos_token_id=0, eos_token_id=2, type_vocab_size=1,
                           max_position_embeddings=spec.max_len + 2)
    save_random(RobertaModel, config, out, device, seed=2)
    write_st_modules(out, spec.hidden, spec.max_len)
    return out


def qwen3_folder(spec: ModelSpec, texts: list[str], scratch: Path, device: str) -> Path:
    """A sentence-transformers folder like Qwen3-Embedding's: the decoder at its root,
    last-token pooling, Normalize, its prompts; left padding, <|endoftext|> appended."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3Model

    out = scratch / spec.key
    bpe = ByteLevelBPETokenizer()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe.train_from_iterator(texts, vocab_size=ROBERTA_VOCAB, show_progress=False,
                            special_tokens=specials)
    eot = bpe.token_to_id("<|endoftext|>")
    bpe.post_processor = TemplateProcessing(single="$A <|endoftext|>",
                                            pair="$A <|endoftext|> $B <|endoftext|>",
                                            special_tokens=[("<|endoftext|>", eot)])
    out.mkdir(parents=True, exist_ok=True)
    bpe.save(str(out / "tokenizer.json"))
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(out / "tokenizer.json"),
                                        eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        padding_side="left", model_max_length=spec.max_len)
    tokenizer.save_pretrained(out)
    config = Qwen3Config(vocab_size=spec.vocab or len(tokenizer), hidden_size=spec.hidden,
                         num_hidden_layers=spec.layers, num_attention_heads=spec.heads,
                         num_key_value_heads=spec.kv_heads, head_dim=spec.head_dim,
                         intermediate_size=spec.intermediate, max_position_embeddings=32768,
                         tie_word_embeddings=True, architectures=["Qwen3ForCausalLM"])
    save_random(Qwen3Model, config, out, device, seed=4)
    write_st_modules(out, spec.hidden, spec.max_len, pooling="lasttoken")
    (out / "config_sentence_transformers.json").write_text(json.dumps(
        {"prompts": {"query": QWEN3_QUERY, "document": ""}, "default_prompt_name": None}))
    return out


def bpe_tokenizer(folder: Path, texts: list[str], max_len: int):
    """RoBERTa's byte-level BPE, trained on `texts`, with RoBERTa's <s> ... </s> framing. Built
    from a tokenizer.json: transformers 5 ignores `vocab_file` / `merges_file` (two tokens a
    text), 4.x and 5.x both read `tokenizer_file` (the same ids as the files gave under 4.x)."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=ROBERTA_VOCAB, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0))
    folder.mkdir(parents=True, exist_ok=True)
    bpe.save(str(folder / "tokenizer.json"))
    tokenizer = RobertaTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"),
                                     model_max_length=max_len)
    tokenizer.save_pretrained(folder)
    return tokenizer


def save_random(model_class, config, out: Path, device: str, seed: int) -> None:
    """Random weights (initialised on `device`: seconds for 355M parameters), saved fp32."""
    torch.manual_seed(seed)
    with torch.device(device):
        model = model_class(config)
    model.to(torch.float32).save_pretrained(out)
    del model


def write_st_modules(folder: Path, hidden: int, max_len: int, pooling: str = "mean") -> None:
    modules = [{"idx": 0, "name": "0", "path": "",
                "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize"}]
    (folder / "modules.json").write_text(json.dumps(modules, indent=2))
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_len, "do_lower_case": False}))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"embedding_dimension": hidden, "pooling_mode": pooling}))


def add_adapter(base: Path, out: Path) -> Path:
    """A random `seq_bn` bottleneck adapter over `base`, saved by `adapters` (the kind
    allenai/specter2 is), weights ~N(0, 0.02). Needs the `adapters` library: the adapter child
    process has it."""
    from tiny_models import tiny_adapter

    return tiny_adapter(base, out, name="proximity", std=0.02)
