"""Load a model through a small registry of backends; every backend turns padded token ids
into one embedding per row.

* sentence-transformers: any ST model (its own modules: pooling, dense, normalize) or a plain
  transformers checkpoint, which ST wraps with its default pooling. Read natively where its
  stack is made of the plain modules (`st_format`), else run module by module through the
  sentence-transformers library.
* transformers: AutoModel (+ an `adapters` adapter) + `pooling` + optional L2 normalisation.

Every backend has a body (the transformer: what runs in the replica's precision, and what half
weights halve) and heads after it that run in float32 (`st_modules.heads_in_fp32`); then the
vectors are cut to the run's dimension (`--truncate-dim`, or the model's own `truncate_dim`,
after its Normalize as sentence-transformers' `encode` does) and normalised where the run asks
for unit vectors the model does not give. The facts (`ModelInfo`) come from `model_facts.
describe`, the driver's own rules, so a replica and the driver agree.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch

from ...errors import UserError
from .checkpoint import dense_state, small_files
from .facts import describe
from .info import BUNDLED_ALIASES, ModelInfo, backend_name, model_error, model_name
from .location import bundled_model_path, resolve_model_source
from .st_format import NativePlan, NotNative, native_modules, route_name
from .st_modules import DenseLayer, NativeSentenceModel, heads_in_fp32, st_pool

__all__ = ["BUNDLED_ALIASES", "ModelInfo", "LoadedModel", "backend_name", "bundled_model_path",
           "load_model", "resolve_model_source"]

Embed = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class LoadedModel:
    """A model on its device: `embed(input_ids, attention_mask) -> [n, dim]` float32.
    `module`: all of it; `body`: the transformer (what half weights cast)."""

    def __init__(self, module: torch.nn.Module, info: ModelInfo, embed: Embed,
                 body: torch.nn.Module | None = None):
        self.module = module
        self.info = info
        self.embed = embed
        self.body = module if body is None else body


def held_dtypes(module: torch.nn.Module) -> set[torch.dtype]:
    return {p.dtype for p in module.parameters() if p.is_floating_point()}


def param_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def finished(embed: Embed, info: ModelInfo, model_normalizes: bool) -> Embed:
    """`embed` with its vectors cut to `info.dim` and, where the run's vectors are unit length
    and the model's are not (cut, or made without a Normalize), normalised: in float32."""

    def embed_finished(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        emb = embed(input_ids, attention_mask)
        cut = emb.shape[1] > info.dim
        if not cut and (model_normalizes or not info.normalized):
            return emb
        with heads_in_fp32(emb):
            emb = emb[:, :info.dim].float()
            return torch.nn.functional.normalize(emb, dim=-1) if info.normalized else emb

    return embed_finished


def load_sentence_transformer(name: str, source: str, device: str, cfg,
                              revision: str | None = None) -> LoadedModel:
    """A sentence-transformers model: read natively when its stack (of the replica's side) is
    made of the plain modules (`st_format`), else by the sentence-transformers library."""
    folder = small_files(source, revision)
    info = describe(cfg, source, folder)
    try:
        plan = native_modules(folder, getattr(cfg, "side", "document"))
    except NotNative:
        return load_with_sentence_transformers(name, source, device, cfg, revision, info)
    return load_native_sentence_model(source, plan, device, cfg, revision, info)


def load_native_sentence_model(source: str, plan: NativePlan, device: str, cfg,
                               revision: str | None, info: ModelInfo) -> LoadedModel:
    from transformers import AutoModel

    local = Path(source).is_dir()
    where = ({"pretrained_model_name_or_path": str(Path(source) / plan.transformer_path)} if local
             else {"pretrained_model_name_or_path": source, "subfolder": plan.transformer_path})
    encoder = AutoModel.from_pretrained(**where, trust_remote_code=cfg.trust_remote_code,
                                        revision=revision)
    denses = [DenseLayer(spec, dense_state(source, spec.path, revision)) for spec in plan.denses]
    module = NativeSentenceModel(encoder, plan, denses, info.prompt_skip).to(device).eval()
    info = dataclasses.replace(info, param_bytes=param_bytes(module))
    return LoadedModel(module, info, finished(module, info, plan.normalize), module.encoder)


def load_with_sentence_transformers(name: str, source: str, device: str, cfg,
                                    revision: str | None = None,
                                    info: ModelInfo | None = None) -> LoadedModel:
    """Through the library, module by module as `SentenceTransformer.forward` runs them (the
    arguments each takes: `task`, `modality`), the transformer in the replica's precision and
    the modules after it in float32; a Router's route of the replica's side in its place."""
    from sentence_transformers import SentenceTransformer

    module = SentenceTransformer(source, device=device, trust_remote_code=cfg.trust_remote_code,
                                 revision=revision)
    module.eval()
    folder = small_files(source, revision)
    info = info or describe(cfg, source, folder)
    side = getattr(cfg, "side", "document")
    stack = _flat_stack(module, folder, side)
    info = dataclasses.replace(info, param_bytes=param_bytes(module))
    kwargs = {"task": side, "modality": "text"}

    def embed(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        features = {"input_ids": input_ids, "attention_mask": attention_mask, "modality": "text"}
        if info.prompt_skip:
            features["prompt_length"] = info.prompt_skip   # read by a Pooling without the prompt
        features = _run(stack[0], features, kwargs)
        features = {k: _as_fp32(v) for k, v in features.items()}
        with heads_in_fp32(input_ids):
            for later in stack[1:]:
                features = _run(later, features, kwargs)
        return features["sentence_embedding"]

    has_norm = any(type(m).__name__ == "Normalize" for m in stack)
    return LoadedModel(module, info, finished(embed, info, has_norm), stack[0])


def _flat_stack(module, folder: Path, side: str) -> list[torch.nn.Module]:
    """The loaded modules a text of `side` runs through (a Router's route in its place)."""
    modules = list(module)
    if type(modules[0]).__name__ in ("Router", "Asym"):
        return list(modules[0].sub_modules[route_name(folder, side)]) + modules[1:]
    return modules


def _run(module, features: dict, kwargs: dict) -> dict:
    wanted = getattr(module, "forward_kwargs", ())
    return module(features, **{k: v for k, v in kwargs.items() if k in wanted})


def _as_fp32(value):
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.float()
    if isinstance(value, (list, tuple)):
        return type(value)(_as_fp32(v) for v in value)
    return value


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
    info = describe(cfg, source, small_files(source, revision))
    module = (load_adapter_model if cfg.adapter else load_base_model)(source, cfg, revision)
    module.to(device).eval()
    info = dataclasses.replace(info, param_bytes=param_bytes(module))
    modes = (info.pooling,)

    def embed(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = module(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        with heads_in_fp32(hidden):
            return st_pool(hidden.float(), attention_mask, modes)

    return LoadedModel(module, info, finished(embed, info, False))


BACKENDS: dict[str, Callable[..., LoadedModel]] = {
    "sentence-transformers": load_sentence_transformer,
    "transformers": load_transformers,
}


def load_model(cfg, device: str = "cpu", source: str | None = None,
               compile: bool = False, revision: str | None = None,
               dtype: torch.dtype = torch.float32) -> LoadedModel:
    """Load the model `cfg` (an OutputSpec, or a replica's ReplicaSpec) names on `device`; a
    model that cannot be loaded is a UserError. `compile`: torch.compile the forward pass;
    `revision`: the Hub commit to load (every replica loads the one the driver resolved);
    `dtype`: the body's weights' dtype (half weights are cast on the host, so the device never
    holds them in fp32; the heads stay float32)."""
    name = model_name(cfg)
    source = source or resolve_model_source(cfg.model)
    loader = BACKENDS[backend_name(cfg)]
    load_on = device if dtype == torch.float32 else "cpu"
    try:
        loaded = loader(name, source, load_on, cfg, revision)
    except (OSError, ValueError) as exc:
        raise model_error(name, exc) from None
    if held_dtypes(loaded.module) != {torch.float32}:
        # transformers 5 loads a checkpoint in its stored dtype (an fp16 file: fp16 weights
        # under a precision that says fp32): the weights are made float32 first
        loaded.module.to(dtype=torch.float32)
    if dtype != torch.float32:
        loaded.body.to(dtype=dtype)
    loaded.module.to(device)
    if compile:
        loaded.embed = torch.compile(loaded.embed, dynamic=True)
    return loaded
