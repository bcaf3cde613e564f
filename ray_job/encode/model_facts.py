"""What the driver needs to know about a model (`ModelInfo`), from its files alone.

The driver never builds the model: `describe` reads the transformers config (`config.json`), the
sentence-transformers module files (`modules.json`, `sentence_*_config.json`,
`1_Pooling/config.json`, a Dense module's `config.json`, `config_sentence_transformers.json`),
loads the tokenizer (cheap), and sizes the weights from their headers (`model_files`). The rules
that turn these facts into a `ModelInfo` are the loaders' own (`model_info`), so the answer equals
`load_model(cfg, source=source).info`. A Hub name works the same way, once its small files are
downloaded.
"""
from __future__ import annotations

import json
from pathlib import Path

from .model_files import small_files, weight_bytes, weights_of
from .st_format import kind_of, pooling_modes
from .model_info import (ModelInfo, backend_name, model_error, model_info, model_name,
                         pooling_name, st_max_length, transformers_max_length)


def describe(cfg, source: str, folder: Path | None = None) -> ModelInfo:
    """The facts of the model `cfg` (an OutputSpec) names, without its weights; `folder`: its
    small files where the caller has them already. A model that cannot be found is a
    UserError."""
    name = model_name(cfg)
    describe_backend = (_sentence_transformer if backend_name(cfg) == "sentence-transformers"
                        else _transformers)
    try:
        return describe_backend(name, source, folder or small_files(source), cfg)
    except (OSError, ValueError) as exc:
        raise model_error(name, exc) from None


def _config(folder: Path, cfg):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(folder), trust_remote_code=cfg.trust_remote_code)


def _tokenizer(folder: Path, cfg):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), trust_remote_code=cfg.trust_remote_code)


def _json(path: Path) -> dict | list | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _transformers(name: str, source: str, folder: Path, cfg) -> ModelInfo:
    """AutoModel (+ an adapter, which leaves hidden_size as it is) + cfg's pooling."""
    config, tokenizer = _config(folder, cfg), _tokenizer(folder, cfg)
    params = weight_bytes(weights_of(source, folder), [""])
    if cfg.adapter:
        local = Path(cfg.adapter).expanduser()
        adapter = str(local) if local.is_dir() else cfg.adapter
        params += weight_bytes(weights_of(adapter, small_files(adapter)), [""])
    return model_info(name, source, "transformers", tokenizer, source,
                      transformers_max_length(tokenizer, config, cfg.max_seq_length),
                      config.hidden_size, cfg.pooling or "cls", bool(cfg.normalize), params)


def _sentence_transformer(name: str, source: str, folder: Path, cfg) -> ModelInfo:
    modules = _json(folder / "modules.json")
    transformer = next((m["path"] for m in modules or () if kind_of(m) == "Transformer"), "")
    config, tokenizer = _config(folder / transformer, cfg), _tokenizer(folder / transformer, cfg)
    if modules is None:   # a plain transformers checkpoint: ST adds its default pooling
        modules, pooling = [], {"pooling_mode": _default_pooling(config)}
        settings = {}
    else:
        pooling = next((_json(folder / m["path"] / "config.json") for m in modules
                        if kind_of(m) == "Pooling"), None)
        settings = next((_json(p) for p in sorted((folder / transformer).glob(
            "sentence_*_config.json"))), None) or {}
    has_norm = any(kind_of(m) == "Normalize" for m in modules)
    dim = _st_dim(folder, modules, pooling, config.hidden_size)
    truncate = (_json(folder / "config_sentence_transformers.json") or {}).get("truncate_dim")
    return model_info(
        name, source, "sentence-transformers", tokenizer, source,
        st_max_length(_st_model_length(settings, tokenizer, config), cfg.max_seq_length),
        min(dim, truncate) if truncate else dim,
        pooling_name(pooling_modes(pooling)) if pooling is not None else "model-defined",
        has_norm or bool(cfg.normalize),
        weight_bytes(weights_of(source, folder), [transformer, *(m["path"] for m in modules)]))


def _default_pooling(config) -> str:
    """sentence-transformers pools the last token of a causal LM, else the mean."""
    archs = getattr(config, "architectures", None) or [""]
    causal = archs[0].endswith("ForCausalLM") and getattr(config, "is_causal", True)
    return "lasttoken" if causal else "mean"


def _st_dim(folder: Path, modules: list[dict], pooling: dict | None, hidden_size: int) -> int:
    """The output size of the last module that sets one (Dense, Pooling, else the model)."""
    for module in reversed(modules):
        if kind_of(module) == "Dense":
            return int(_json(folder / module["path"] / "config.json")["out_features"])
        if kind_of(module) == "Pooling":
            break
    if pooling is None:
        return hidden_size
    width = pooling.get("embedding_dimension", pooling.get("word_embedding_dimension"))
    return int(width or hidden_size) * len(pooling_modes(pooling))


def _st_model_length(settings: dict, tokenizer, config) -> int | None:
    """The Transformer module's max_seq_length: the length its config file sets, else the
    tokenizer's limit capped at the model's positions."""
    tokenizer_args = settings.get("processor_kwargs") or settings.get("tokenizer_args") or {}
    configured = tokenizer_args.get("model_max_length", settings.get("max_seq_length"))
    if configured is not None:
        return configured
    limit = getattr(config, "max_position_embeddings", None)
    if limit is None or limit == -1:
        return tokenizer.model_max_length
    return min(tokenizer.model_max_length, limit)
