"""The sentence-transformers format, read without the sentence-transformers library.

A sentence-transformers model is a folder (or Hub repo) whose `modules.json` lists modules:
a Transformer (a transformers encoder), a Pooling, optionally Dense projections and a
Normalize. That covers the models our users embed papers with (all-MiniLM-L6-v2,
all-roberta-large-v1, all-mpnet-base-v2, ...). Loading them here, as text-embeddings-inference
does, spares every replica the import of sentence-transformers and what it pulls in (scikit-learn,
SciPy: about 3 s of each replica's start) and runs the same operations in the same order, so the
embeddings are the same.

`native_modules(folder)` says whether a model is of that kind (`NativePlan`) or why not
(`NotNative`: the caller then loads it with sentence-transformers itself): another module
type, a pooling mode or activation not listed here, model arguments, a non-torch backend, an
architecture outside `ENCODER_TYPES`, or `truncate_dim`.

This module only reads the files (no torch: the driver reads a model's facts with it);
`st_modules` runs the forward pass in the replica.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

MODULE_KINDS = ("Transformer", "Pooling", "Dense", "Normalize")
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
LEGACY_POOLING_FLAGS = (("pooling_mode_cls_token", "cls"), ("pooling_mode_max_tokens", "max"),
                        ("pooling_mode_mean_tokens", "mean"),
                        ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len_tokens"),
                        ("pooling_mode_weightedmean_tokens", "weightedmean"),
                        ("pooling_mode_lasttoken", "lasttoken"))
# the Dense activations run here (st_modules.ACTIVATIONS maps each to its torch module)
ACTIVATION_NAMES = ("torch.nn.modules.activation.Tanh", "torch.nn.modules.linear.Identity")
# transformers encoders whose AutoModel forward(input_ids, attention_mask).last_hidden_state is
# what sentence-transformers' Transformer module returns for them
ENCODER_TYPES = ("bert", "roberta", "xlm-roberta", "camembert", "mpnet", "distilbert",
                 "electra", "albert", "deberta", "deberta-v2")
# Transformer settings that leave the forward pass as it is (tokenizer settings: the tokenize
# stage reads those itself)
PLAIN_TEXT_MODALITY = {"text": {"method": "forward", "method_output_name": "last_hidden_state"}}
INERT_SETTINGS = {"max_seq_length", "do_lower_case", "tokenizer_args", "processor_kwargs",
                  "transformer_task", "modality_config", "module_output_name"}


class NotNative(Exception):
    """Why a model is not loaded here (it is loaded with sentence-transformers instead)."""


@dataclass(frozen=True)
class DenseSpec:
    path: str
    in_features: int
    out_features: int
    bias: bool
    activation: str


@dataclass(frozen=True)
class NativePlan:
    """What a plain sentence-transformers model is made of, in order."""
    transformer_path: str
    pooling_modes: tuple[str, ...]
    denses: tuple[DenseSpec, ...]
    normalize: bool


def _json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def kind_of(module: dict) -> str:
    return module["type"].rsplit(".", 1)[-1]


def pooling_modes(config: dict) -> tuple[str, ...]:
    """The pooling modes a Pooling config sets (its `pooling_mode`, or the legacy flags)."""
    mode = config.get("pooling_mode")
    if mode is None:
        return tuple(m for key, m in LEGACY_POOLING_FLAGS if config.get(key)) or ("mean",)
    return (mode,) if isinstance(mode, str) else tuple(mode)


def native_modules(folder: Path) -> NativePlan:
    """The plan of the model whose small files are in `folder`; NotNative says why not."""
    modules = _json(folder / "modules.json")
    if not modules:
        raise NotNative("no modules.json")
    kinds = [kind_of(m) for m in modules]
    odd = [k for k in kinds if k not in MODULE_KINDS]
    if odd or kinds[:2] != ["Transformer", "Pooling"] or kinds.count("Pooling") != 1:
        raise NotNative(f"modules {kinds}")
    if (_json(folder / "config_sentence_transformers.json") or {}).get("truncate_dim"):
        raise NotNative("truncate_dim")
    transformer = modules[0]["path"]
    _check_transformer(folder / transformer)
    pooling = _pooling(folder / modules[1]["path"])
    rest = modules[2:]
    normalize = [kind_of(m) for m in rest[-1:]] == ["Normalize"]
    body = rest[:-1] if normalize else rest
    if any(kind_of(m) != "Dense" for m in body):
        raise NotNative(f"modules {kinds}")
    return NativePlan(transformer, pooling, tuple(_dense(folder, m["path"]) for m in body),
                      normalize)


def _check_transformer(folder: Path) -> None:
    settings = next((_json(p) for p in sorted(folder.glob("sentence_*_config.json"))), None) or {}
    odd = sorted(set(settings) - INERT_SETTINGS)
    if odd or settings.get("transformer_task", "feature-extraction") != "feature-extraction" \
            or settings.get("modality_config", PLAIN_TEXT_MODALITY) != PLAIN_TEXT_MODALITY \
            or settings.get("module_output_name", "token_embeddings") != "token_embeddings":
        raise NotNative(f"Transformer settings {odd or settings}")
    config = _json(folder / "config.json") or {}
    if config.get("model_type") not in ENCODER_TYPES:
        raise NotNative(f"architecture {config.get('model_type')!r}")


def _pooling(folder: Path) -> tuple[str, ...]:
    config = _json(folder / "config.json") or {}
    modes = pooling_modes(config)
    if any(m not in POOLING_MODES for m in modes):
        raise NotNative(f"pooling {modes}")
    return modes


def _dense(folder: Path, path: str) -> DenseSpec:
    config = _json(folder / path / "config.json") or {}
    activation = config.get("activation_function", "torch.nn.modules.activation.Tanh")
    if activation not in ACTIVATION_NAMES or any(
            config.get(k, "sentence_embedding") != "sentence_embedding"
            for k in ("module_input_name", "module_output_name")):
        raise NotNative(f"Dense {config}")
    return DenseSpec(path, int(config["in_features"]), int(config["out_features"]),
                     bool(config.get("bias", True)), activation)
