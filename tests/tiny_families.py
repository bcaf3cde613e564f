"""Tiny random models of the embedders people pick for papers, each of its family's real
architecture and saved the way its authors publish it: a sentence-transformers folder with the
family's modules, pooling, prompts and tokenizer framing (`FAMILIES`: name -> builder).

* e5: BERT, mean pooling, Normalize; `query: ` / `passage: ` prompts, `passage` the default.
* bge: BERT, CLS pooling, Normalize; a query instruction, no document prompt.
* nomic: BERT-shaped (nomic-bert is remote code), mean, Normalize; `search_query` /
  `search_document` prompts, no default (a document prompt is chosen by name).
* qwen3: a Qwen3 decoder, last-token pooling, Normalize, left padding, an <|endoftext|> the
  tokenizer appends, an instruction on queries and an empty document prompt.
* embeddinggemma: Gemma 3 with bidirectional attention, mean pooling, Dense -> Dense (no bias,
  identity) -> Normalize, <bos> ... <eos> framing, query and document prompts.
* gte-modernbert: ModernBERT, CLS pooling, Normalize.

Other stacks sentence-transformers ships (`STACKS`): WeightedLayerPooling, LayerNorm, a Router
with its own query and document encoders, a Pooling that leaves the prompt out (INSTRUCTOR),
a Matryoshka `truncate_dim`, `do_lower_case`, every pooling mode with a Dense (tanh).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ray_job.encode.model.loading import bundled_model_path

HIDDEN = 32
QWEN3_QUERY = ("Instruct: Given a web search query, retrieve relevant passages that answer the "
               "query\nQuery:")
GEMMA_PROMPTS = {"query": "task: search result | query: ", "document": "title: none | text: ",
                 "Clustering": "task: clustering | query: ",
                 "Retrieval-query": "task: search result | query: "}
BGE_QUERY = "Represent this sentence for searching relevant passages: "


def _st(path: Path, modules: list, **settings) -> Path:
    from sentence_transformers import SentenceTransformer

    SentenceTransformer(modules=modules, **settings).save(str(path))
    return path


def _st_modules():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sentence_transformers import models
    return models


def bert_body(path: Path, seed: int = 0, **config) -> Path:
    """A tiny BERT with the bundled model's WordPiece tokenizer (uncased)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path())
    tokenizer.save_pretrained(path)
    torch.manual_seed(seed)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=HIDDEN, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=37, max_position_embeddings=512,
                         **config)).save_pretrained(path)
    return path


def bpe_tokenizer(texts: list[str], specials: list[str], template: tuple[str, ...], **kwargs):
    """A byte-level BPE trained on `texts`, framing each text as `template` says (its special
    tokens around "$A"), as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=1200, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    single = " ".join(template)
    bpe.post_processor = processors.TemplateProcessing(
        single=single, pair=f"{single} {single.replace('$A', '$B')}",
        special_tokens=[(t, bpe.token_to_id(t)) for t in specials if t in template])
    return PreTrainedTokenizerFast(tokenizer_object=bpe, **kwargs)


def e5(root: Path, texts: list[str]) -> Path:
    m = _st_modules()
    word = m.Transformer(str(bert_body(root / "hf", seed=11)), max_seq_length=64)
    return _st(root / "st", [word, m.Pooling(HIDDEN, "mean"), m.Normalize()],
               prompts={"query": "query: ", "passage": "passage: "},
               default_prompt_name="passage")


def bge(root: Path, texts: list[str]) -> Path:
    m = _st_modules()
    word = m.Transformer(str(bert_body(root / "hf", seed=12)), max_seq_length=64)
    return _st(root / "st", [word, m.Pooling(HIDDEN, "cls"), m.Normalize()],
               prompts={"query": BGE_QUERY})


def nomic(root: Path, texts: list[str]) -> Path:
    m = _st_modules()
    word = m.Transformer(str(bert_body(root / "hf", seed=13)), max_seq_length=64)
    return _st(root / "st", [word, m.Pooling(HIDDEN, "mean"), m.Normalize()],
               prompts={"search_query": "search_query: ", "search_document": "search_document: ",
                        "clustering": "clustering: "})


def qwen3(root: Path, texts: list[str]) -> Path:
    from transformers import Qwen3Config, Qwen3Model

    m = _st_modules()
    hf = root / "hf"
    tokenizer = bpe_tokenizer(texts, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                              ("$A", "<|endoftext|>"), eos_token="<|im_end|>",
                              pad_token="<|endoftext|>", padding_side="left",
                              model_max_length=131072)
    tokenizer.save_pretrained(hf)
    torch.manual_seed(14)
    Qwen3Model(Qwen3Config(vocab_size=len(tokenizer), hidden_size=HIDDEN, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                           intermediate_size=48, max_position_embeddings=512,
                           architectures=["Qwen3ForCausalLM"])).save_pretrained(hf)
    word = m.Transformer(str(hf), max_seq_length=96)
    return _st(root / "st", [word, m.Pooling(HIDDEN, "lasttoken"), m.Normalize()],
               prompts={"query": QWEN3_QUERY, "document": ""})


def embeddinggemma(root: Path, texts: list[str]) -> Path:
    from transformers import Gemma3TextConfig, Gemma3TextModel

    m = _st_modules()
    hf = root / "hf"
    tokenizer = bpe_tokenizer(texts, ["<pad>", "<eos>", "<bos>", "<unk>"],
                              ("<bos>", "$A", "<eos>"), bos_token="<bos>", eos_token="<eos>",
                              pad_token="<pad>", unk_token="<unk>", model_max_length=2048)
    tokenizer.save_pretrained(hf)
    torch.manual_seed(15)
    Gemma3TextModel(Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=HIDDEN, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1, head_dim=8, intermediate_size=48,
        max_position_embeddings=512, use_bidirectional_attention=True, sliding_window=16,
        pad_token_id=0, eos_token_id=1, bos_token_id=2)).save_pretrained(hf)
    word = m.Transformer(str(hf), max_seq_length=80)
    torch.manual_seed(16)
    up = m.Dense(HIDDEN, 4 * HIDDEN, bias=False, activation_function=torch.nn.Identity())
    down = m.Dense(4 * HIDDEN, HIDDEN, bias=False, activation_function=torch.nn.Identity())
    return _st(root / "st", [word, m.Pooling(HIDDEN, "mean"), up, down, m.Normalize()],
               prompts=GEMMA_PROMPTS)


def gte_modernbert(root: Path, texts: list[str]) -> Path:
    from transformers import (
        AutoTokenizer,
        ModernBertConfig,
        ModernBertModel,
        PreTrainedTokenizerFast,
    )

    m = _st_modules()
    hf = root / "hf"
    bert = AutoTokenizer.from_pretrained(bundled_model_path())
    tokenizer = PreTrainedTokenizerFast(     # as ModernBERT's own: no token type ids
        tokenizer_object=bert.backend_tokenizer, cls_token="[CLS]", sep_token="[SEP]",
        pad_token="[PAD]", unk_token="[UNK]", mask_token="[MASK]", model_max_length=8192,
        model_input_names=["input_ids", "attention_mask"])
    tokenizer.save_pretrained(hf)
    torch.manual_seed(17)
    ModernBertModel(ModernBertConfig(
        vocab_size=len(tokenizer), hidden_size=HIDDEN, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=48, max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id, cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id, bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id, global_attn_every_n_layers=2,
        local_attention=16)).save_pretrained(hf)
    word = m.Transformer(str(hf), max_seq_length=64)
    return _st(root / "st", [word, m.Pooling(HIDDEN, "cls"), m.Normalize()])


FAMILIES = {"e5": e5, "bge": bge, "nomic": nomic, "qwen3": qwen3,
            "embeddinggemma": embeddinggemma, "gte-modernbert": gte_modernbert}


# ---- other stacks sentence-transformers ships -----------------------------------------------

def weighted_layers(root: Path, texts: list[str]) -> Path:
    m = _st_modules()
    word = m.Transformer(str(bert_body(root / "hf", seed=21, output_hidden_states=True)),
                         max_seq_length=64)
    torch.manual_seed(22)
    layers = m.WeightedLayerPooling(HIDDEN, num_hidden_layers=2, layer_start=1,
                                    layer_weights=torch.nn.Parameter(torch.tensor([0.3, 1.7])))
    return _st(root / "st", [word, layers, m.Pooling(HIDDEN, "mean"), m.Normalize()])


def layer_norm(root: Path, texts: list[str]) -> Path:
    m = _st_modules()
    word = m.Transformer(str(bert_body(root / "hf", seed=23)), max_seq_length=64)
    norm = m.LayerNorm(HIDDEN)
    torch.manual_seed(24)
    with torch.no_grad():
        norm.norm.weight.normal_(1.0, 0.5)
        norm.norm.bias.normal_(0.0, 0.5)
    torch.manual_seed(25)
    dense = m.Dense(HIDDEN, 24)
    return _st(root / "st", [word, m.Pooling(HIDDEN, "max"), norm, dense, m.Normalize()])


def router(root: Path, texts: list[str]) -> Path:
    """An asymmetric model: queries through one BERT (mean pooling, 48 tokens), documents
    through another (CLS, a Dense, 64 tokens), both then normalised; with prompts."""
    m = _st_modules()
    query = [m.Transformer(str(bert_body(root / "q", seed=31)), max_seq_length=48),
             m.Pooling(HIDDEN, "mean")]
    torch.manual_seed(32)
    document = [m.Transformer(str(bert_body(root / "d", seed=33)), max_seq_length=64),
                m.Pooling(HIDDEN, "cls"), m.Dense(HIDDEN, HIDDEN)]
    routed = m.Router.for_query_document(query_modules=query, document_modules=document)
    return _st(root / "st", [routed, m.Normalize()],
               prompts={"query": "query: ", "document": "passage: "})


def instructor(root: Path, texts: list[str]) -> Path:
    """A Pooling that leaves the prompt out (`include_prompt: false`), as INSTRUCTOR's."""
    m = _st_modules()
    word = m.Transformer(str(bert_body(root / "hf", seed=41)), max_seq_length=64)
    pooling = m.Pooling(HIDDEN, "mean", include_prompt=False)
    return _st(root / "st", [word, pooling, m.Normalize()],
               prompts={"query": "Represent the scientific question for retrieving papers: ",
                        "document": "Represent the scientific paper for retrieval: "})


def matryoshka(root: Path, texts: list[str]) -> Path:
    """`truncate_dim` 16 of 32 in the model's own config."""
    m = _st_modules()
    word = m.Transformer(str(bert_body(root / "hf", seed=51)), max_seq_length=64)
    return _st(root / "st", [word, m.Pooling(HIDDEN, "mean"), m.Normalize()], truncate_dim=16)


def lowercased(root: Path, texts: list[str]) -> Path:
    """`do_lower_case` over a cased byte-level BPE (a RoBERTa)."""
    from transformers import RobertaConfig, RobertaModel

    m = _st_modules()
    hf = root / "hf"
    tokenizer = bpe_tokenizer(texts, ["<s>", "<pad>", "</s>", "<unk>"], ("<s>", "$A", "</s>"),
                              bos_token="<s>", eos_token="</s>", sep_token="</s>",
                              cls_token="<s>", pad_token="<pad>", unk_token="<unk>",
                              model_max_length=128)
    tokenizer.save_pretrained(hf)
    torch.manual_seed(61)
    RobertaModel(RobertaConfig(vocab_size=len(tokenizer), hidden_size=HIDDEN,
                               num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                               max_position_embeddings=130, pad_token_id=1)).save_pretrained(hf)
    word = m.Transformer(str(hf), max_seq_length=64, do_lower_case=True)
    return _st(root / "st", [word, m.Pooling(HIDDEN, "mean")])


def every_pooling(root: Path, texts: list[str]) -> Path:
    """All six pooling modes concatenated, a Dense (tanh) and no Normalize."""
    m = _st_modules()
    word = m.Transformer(str(bert_body(root / "hf", seed=71)), max_seq_length=64)
    modes = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
    torch.manual_seed(72)
    return _st(root / "st", [word, m.Pooling(HIDDEN, modes), m.Dense(6 * HIDDEN, 20)])


STACKS = {"weighted-layers": weighted_layers, "layer-norm": layer_norm, "router": router,
          "instructor": instructor, "matryoshka": matryoshka, "lowercased": lowercased,
          "every-pooling": every_pooling}


def build(name: str, root: Path, texts: list[str]) -> Path:
    """The model `name` (a family or a stack), built under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    return {**FAMILIES, **STACKS}[name](root, texts)


def st_config(folder: Path) -> dict:
    return json.loads((folder / "config_sentence_transformers.json").read_text())
