"""The sentence-transformers format, read without the sentence-transformers library.

A sentence-transformers model is a folder (or Hub repo) whose `modules.json` lists modules:
a Transformer (a transformers model), a Pooling, optionally Dense projections and a Normalize.
An asymmetric model starts with a Router instead, which sends a query and a document through
routes of their own (each a list of modules, in `router_config.json`); `module_stack(folder,
side)` gives the modules a text of one side goes through, the Router's route for that side in
the Router's place, so the rest of ray-embed sees one flat stack per side.

`native_modules(folder, side)` says whether a stack is made of the plain modules (`NativePlan`)
or why not (`NotNative`: the caller then loads it with sentence-transformers itself): another
module type, a pooling mode or activation not listed here, model arguments, a non-torch backend
or an architecture outside `ENCODER_TYPES`. That covers the models our users embed papers with
(all-MiniLM-L6-v2, all-roberta-large-v1, e5, bge, gte-modernbert, Qwen3-Embedding,
EmbeddingGemma, ...). Loading them here, as text-embeddings-inference does, spares every replica
the import of sentence-transformers and what it pulls in (scikit-learn, SciPy) and runs the same
operations in the same order, so the embeddings are the same.

This module only reads the files (no torch: the driver reads a model's facts with it);
`st_modules` runs the forward pass in the replica.
"""
from __future__ import annotations

import ast
import json
import posixpath
from dataclasses import dataclass
from pathlib import Path

from ...errors import UserError

SIDES = ("document", "query")
MODULE_KINDS = ("Transformer", "Pooling", "Dense", "Normalize")
ROUTER_KINDS = ("Router", "Asym")
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
LEGACY_POOLING_FLAGS = (("pooling_mode_cls_token", "cls"), ("pooling_mode_max_tokens", "max"),
                        ("pooling_mode_mean_tokens", "mean"),
                        ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len_tokens"),
                        ("pooling_mode_weightedmean_tokens", "weightedmean"),
                        ("pooling_mode_lasttoken", "lasttoken"))
# the Dense activations run here (st_modules.ACTIVATIONS maps each to its torch module)
ACTIVATION_NAMES = ("torch.nn.modules.activation.Tanh", "torch.nn.modules.linear.Identity")
# transformers models whose AutoModel forward(input_ids, attention_mask).last_hidden_state is
# what sentence-transformers' Transformer module returns for them (tested against the library
# for each family: tests/encode/test_model_families.py)
ENCODER_TYPES = ("bert", "roberta", "xlm-roberta", "camembert", "mpnet", "distilbert",
                 "electra", "albert", "deberta", "deberta-v2", "modernbert", "qwen2", "qwen3",
                 "gemma3_text")
# what sentence-transformers' Transformer module does with text by default
PLAIN_TEXT_MODALITY = {"text": {"method": "forward", "method_output_name": "last_hidden_state"}}
# Transformer settings that leave the forward pass as it is (tokenizer settings: the tokenize
# stage reads those itself, `transformer_settings`)
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
    """What a plain sentence-transformers stack is made of, in order."""
    transformer_path: str
    pooling_modes: tuple[str, ...]
    denses: tuple[DenseSpec, ...]
    normalize: bool


def read_json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def kind_of(module: dict) -> str:
    return module["type"].rsplit(".", 1)[-1]


def st_config(folder: Path) -> dict:
    """The model-level settings (`config_sentence_transformers.json`: prompts, truncate_dim)."""
    return read_json(folder / "config_sentence_transformers.json") or {}


def module_stack(folder: Path, side: str = "document") -> list[dict] | None:
    """The modules (`type`, `path` from the model's root) a text of `side` goes through, in
    order; None for a plain transformers checkpoint (no `modules.json`)."""
    modules = read_json(folder / "modules.json")
    if not modules:
        return None
    first, rest = modules[0], list(modules[1:])
    if kind_of(first) not in ROUTER_KINDS:
        return list(modules)
    router = (read_json(folder / first["path"] / "router_config.json")
              or read_json(folder / first["path"] / "config.json") or {})
    route = route_name(folder, side)
    return [{"type": router["types"][name],
             "path": posixpath.join(first["path"], name) if first["path"] else name}
            for name in router["structure"][route]] + rest


def route_name(folder: Path, side: str) -> str:
    """The route of the Router that is the model's first module, for a text of `side`."""
    router_path = (read_json(folder / "modules.json") or [{}])[0].get("path", "")
    router = (read_json(folder / router_path / "router_config.json")
              or read_json(folder / router_path / "config.json") or {})
    return route_for(router.get("structure", {}), router.get("parameters", {}), side)


def route_for(structure: dict, parameters: dict, side: str) -> str:
    """The route sentence-transformers' Router takes for a text of task `side`
    (`encode_document` / `encode_query`), in the library's order: the (task, modality)
    mappings, then a route named after the task or the modality. Where the library would
    refuse (no route for the task), the route `encode` takes: the default route."""
    mappings = {}
    for key, route in (parameters.get("route_mappings") or {}).items():
        task, modality = ast.literal_eval(key) if isinstance(key, str) else key
        mappings[(task, modality)] = route
    for wanted in ((side, "text"), (side, None), (None, "text"), (None, None)):
        if wanted in mappings:
            return mappings[wanted]
    for name in (side, "text"):
        if name in structure:
            return name
    default = parameters.get("default_route")
    if default is None and parameters.get("allow_empty_key", True) and structure:
        default = next(iter(structure))
    if default not in structure:
        raise UserError(f"the model's Router has no route for a {side} (routes: "
                        f"{', '.join(structure) or 'none'})")
    return default


def transformer_settings(folder: Path) -> dict:
    """A Transformer module's own settings file (`sentence_bert_config.json` or its kin)."""
    return next((read_json(p) for p in sorted(folder.glob("sentence_*_config.json"))), None) or {}


def pooling_modes(config: dict) -> tuple[str, ...]:
    """The pooling modes a Pooling config sets (its `pooling_mode`, or the legacy flags)."""
    mode = config.get("pooling_mode")
    if mode is None:
        return tuple(m for key, m in LEGACY_POOLING_FLAGS if config.get(key)) or ("mean",)
    return (mode,) if isinstance(mode, str) else tuple(mode)


def native_modules(folder: Path, side: str = "document") -> NativePlan:
    """The plan of the `side` stack of the model whose small files are in `folder`; NotNative
    says why not."""
    stack = module_stack(folder, side)
    if not stack:
        raise NotNative("no modules.json")
    kinds = [kind_of(m) for m in stack]
    odd = [k for k in kinds if k not in MODULE_KINDS]
    if odd or kinds[:2] != ["Transformer", "Pooling"] or kinds.count("Pooling") != 1:
        raise NotNative(f"modules {kinds}")
    transformer = stack[0]["path"]
    _check_transformer(folder / transformer)
    pooling = _pooling(folder / stack[1]["path"])
    rest = stack[2:]
    normalize = [kind_of(m) for m in rest[-1:]] == ["Normalize"]
    body = rest[:-1] if normalize else rest
    if any(kind_of(m) != "Dense" for m in body):
        raise NotNative(f"modules {kinds}")
    return NativePlan(transformer, pooling, tuple(_dense(folder, m["path"]) for m in body),
                      normalize)


def _check_transformer(folder: Path) -> None:
    settings = transformer_settings(folder)
    odd = sorted(set(settings) - INERT_SETTINGS)
    if odd or settings.get("transformer_task", "feature-extraction") != "feature-extraction" \
            or settings.get("modality_config", PLAIN_TEXT_MODALITY) != PLAIN_TEXT_MODALITY \
            or settings.get("module_output_name", "token_embeddings") != "token_embeddings":
        raise NotNative(f"Transformer settings {odd or settings}")
    config = read_json(folder / "config.json") or {}
    if config.get("model_type") not in ENCODER_TYPES:
        raise NotNative(f"architecture {config.get('model_type')!r}")


def _pooling(folder: Path) -> tuple[str, ...]:
    config = read_json(folder / "config.json") or {}
    modes = pooling_modes(config)
    if any(m not in POOLING_MODES for m in modes):
        raise NotNative(f"pooling {modes}")
    return modes


def pooling_config(folder: Path, stack: list[dict] | None) -> dict | None:
    """The Pooling module's config of a stack (None: the stack has no Pooling)."""
    return next((read_json(folder / m["path"] / "config.json") or {} for m in stack or ()
                 if kind_of(m) == "Pooling"), None)


def _dense(folder: Path, path: str) -> DenseSpec:
    config = read_json(folder / path / "config.json") or {}
    activation = config.get("activation_function", "torch.nn.modules.activation.Tanh")
    if activation not in ACTIVATION_NAMES or any(
            config.get(k, "sentence_embedding") != "sentence_embedding"
            for k in ("module_input_name", "module_output_name")):
        raise NotNative(f"Dense {config}")
    return DenseSpec(path, int(config["in_features"]), int(config["out_features"]),
                     bool(config.get("bias", True)), activation)
