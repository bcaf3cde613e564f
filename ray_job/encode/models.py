"""Load a model through a small registry of backends; every backend turns padded token ids
into one embedding per row.

* sentence-transformers: any ST model (its own modules: pooling, dense, normalize) or a plain
  transformers checkpoint, which ST wraps with mean pooling.
* transformers: AutoModel + `pooling` (cls | mean) + optional L2 normalisation.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import torch

from ..errors import UserError
from .model_facts import describe
from .model_files import dense_state, small_files
from .model_info import (BUNDLED_ALIASES, ModelInfo, backend_name, model_error, model_info,
                         model_name, pooling_name, st_max_length, transformers_max_length)
from .model_source import bundled_model_path, resolve_model_source
from .st_format import NativePlan, NotNative, native_modules
from .st_modules import DenseLayer, NativeSentenceModel

__all__ = ["BUNDLED_ALIASES", "ModelInfo", "LoadedModel", "backend_name", "bundled_model_path",
           "load_model", "pool", "resolve_model_source"]


class LoadedModel:
    """A model on its device: `embed(input_ids, attention_mask) -> [n, dim]`."""

    def __init__(self, module: torch.nn.Module, info: ModelInfo,
                 embed: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
        self.module = module
        self.info = info
        self.embed = embed


def held_dtypes(module: torch.nn.Module) -> set[torch.dtype]:
    return {p.dtype for p in module.parameters() if p.is_floating_point()}


def param_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def load_sentence_transformer(name: str, source: str, device: str, cfg,
                              revision: str | None = None) -> LoadedModel:
    """A sentence-transformers model: read natively when it is made of the plain modules
    (`st_format`), else by the sentence-transformers library."""
    folder = small_files(source, revision)
    try:
        plan = native_modules(folder)
    except NotNative:
        return load_with_sentence_transformers(name, source, device, cfg, revision)
    return load_native_sentence_model(name, source, folder, plan, device, cfg, revision)


def load_native_sentence_model(name: str, source: str, folder: Path, plan: NativePlan,
                               device: str, cfg, revision: str | None = None) -> LoadedModel:
    from transformers import AutoModel

    local = Path(source).is_dir()
    where = ({"pretrained_model_name_or_path": str(Path(source) / plan.transformer_path)} if local
             else {"pretrained_model_name_or_path": source, "subfolder": plan.transformer_path})
    encoder = AutoModel.from_pretrained(**where, trust_remote_code=cfg.trust_remote_code,
                                        revision=revision)
    denses = [DenseLayer(spec, dense_state(source, spec.path, revision)) for spec in plan.denses]
    module = NativeSentenceModel(encoder, plan, denses).to(device).eval()
    facts = describe(cfg, source, folder)
    normalize = bool(cfg.normalize) and not plan.normalize
    info = dataclasses.replace(facts, param_bytes=param_bytes(module))

    def embed(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        emb = module(input_ids, attention_mask)
        return torch.nn.functional.normalize(emb, dim=-1) if normalize else emb

    return LoadedModel(module, info, embed)


def load_with_sentence_transformers(name: str, source: str, device: str, cfg,
                                    revision: str | None = None) -> LoadedModel:
    from sentence_transformers import SentenceTransformer

    module = SentenceTransformer(source, device=device, trust_remote_code=cfg.trust_remote_code,
                                 revision=revision)
    module.eval()
    max_len = st_max_length(module.max_seq_length, cfg.max_seq_length)
    if cfg.max_seq_length:
        module.max_seq_length = max_len
    pooling = _st_pooling_mode(module)
    has_norm = any(type(m).__name__ == "Normalize" for m in module)
    normalize = bool(cfg.normalize) and not has_norm
    dim_of = getattr(module, "get_embedding_dimension", None) or module.get_sentence_embedding_dimension
    dim = dim_of()
    info = model_info(name, source, "sentence-transformers", module.tokenizer,
                      module.tokenizer.name_or_path or source, max_len, dim, pooling,
                      has_norm or normalize, param_bytes(module))

    def embed(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = module({"input_ids": input_ids, "attention_mask": attention_mask})
        emb = out["sentence_embedding"]
        return torch.nn.functional.normalize(emb, dim=-1) if normalize else emb

    return LoadedModel(module, info, embed)


def _st_pooling_mode(module) -> str:
    """The Pooling module's mode, across sentence-transformers versions."""
    for m in module:
        if type(m).__name__ == "Pooling":
            if hasattr(m, "get_pooling_mode_str"):
                return m.get_pooling_mode_str()
            return pooling_name(m.get_config_dict().get("pooling_mode", "unknown"))
    return "model-defined"


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def load_base_model(source: str, cfg, revision: str | None = None) -> torch.nn.Module:
    from transformers import AutoModel

    return AutoModel.from_pretrained(source, trust_remote_code=cfg.trust_remote_code,
                                     revision=revision)


def load_adapter_model(source: str, cfg, revision: str | None = None) -> torch.nn.Module:
    """SPECTER2-style: the base model with an `adapters` adapter loaded and set active."""
    from adapters import AutoAdapterModel

    module = AutoAdapterModel.from_pretrained(source, trust_remote_code=cfg.trust_remote_code,
                                              revision=revision)
    local = Path(cfg.adapter).expanduser()
    hub = {} if local.is_dir() else {"source": "hf"}
    name = module.load_adapter(str(local) if local.is_dir() else cfg.adapter, load_as="adapter",
                               set_active=True, **hub)
    if name not in (module.active_adapters.flatten() if module.active_adapters else ()):
        raise UserError(f"adapter {cfg.adapter!r} loaded but is not active")
    return module


def load_transformers(name: str, source: str, device: str, cfg,
                      revision: str | None = None) -> LoadedModel:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=cfg.trust_remote_code,
                                              revision=revision)
    module = (load_adapter_model if cfg.adapter else load_base_model)(source, cfg, revision)
    module.to(device).eval()
    mode = cfg.pooling or "cls"
    max_len = transformers_max_length(tokenizer, module.config, cfg.max_seq_length)
    info = model_info(name, source, "transformers", tokenizer, tokenizer.name_or_path or source,
                      max_len, module.config.hidden_size, mode, bool(cfg.normalize),
                      param_bytes(module))

    def embed(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = module(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        emb = pool(hidden, attention_mask, mode)
        return torch.nn.functional.normalize(emb, dim=-1) if cfg.normalize else emb

    return LoadedModel(module, info, embed)


BACKENDS: dict[str, Callable[..., LoadedModel]] = {
    "sentence-transformers": load_sentence_transformer,
    "transformers": load_transformers,
}


def load_model(cfg, device: str = "cpu", source: str | None = None,
               compile: bool = False, revision: str | None = None,
               dtype: torch.dtype = torch.float32) -> LoadedModel:
    """Load the model `cfg` (an OutputSpec) names on `device`; a model that cannot be loaded
    is a UserError. `compile`: torch.compile the forward pass; `revision`: the Hub commit to
    load (every replica loads the one the driver resolved); `dtype`: the weights' dtype (half
    weights are cast on the host, so the device never holds them in fp32)."""
    name = model_name(cfg)
    source = source or resolve_model_source(cfg.model)
    loader = BACKENDS[backend_name(cfg)]
    load_on = device if dtype == torch.float32 else "cpu"
    try:
        loaded = loader(name, source, load_on, cfg, revision)
    except (OSError, ValueError) as exc:
        raise model_error(name, exc) from None
    if load_on != device or held_dtypes(loaded.module) != {dtype}:
        # transformers 5 loads a checkpoint in its stored dtype (an fp16 file: fp16 weights
        # under a precision that says fp32): the weights are cast to what the precision says
        loaded.module.to(dtype=dtype).to(device)
    if compile:
        loaded.embed = torch.compile(loaded.embed, dynamic=True)
    return loaded
