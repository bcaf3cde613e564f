"""What the job needs to know about a model (`ModelInfo`), from its files alone.

The driver never builds the model: `describe` reads the transformers config (`config.json`), the
sentence-transformers module files (`modules.json`, a Router's `router_config.json`,
`sentence_*_config.json`, `1_Pooling/config.json`, a Dense module's `config.json`,
`config_sentence_transformers.json`), loads the tokenizer (cheap), and sizes the weights from
their headers (`model_files`). The replicas take their facts from here too (with the weights
they hold), so the driver and every replica agree. A Hub name works the same way, once its small
files are downloaded.

A model is described for one side, document (the papers) or query (`search`): an asymmetric
model's Router sends each through its own modules (`st_format.module_stack`), and each side has
its own prompt (`prompts`). What contradicts the model is refused here, before anything runs:
`--pooling` on a sentence-transformers model (it pools with its own modules), `cls` pooling on a
causal decoder (its first token sees no other), a `--truncate-dim` above the model's dimension,
an unknown prompt name, a model ray-embed cannot tokenize for.
"""
from __future__ import annotations

from pathlib import Path

from ...errors import UserError
from ..tokenize import st_tokenizer
from .checkpoint import small_files, weight_bytes, weights_of
from .info import (
    ModelInfo,
    backend_name,
    model_error,
    model_info,
    model_name,
    pooling_name,
    st_max_length,
    transformers_max_length,
)
from .prompts import Prompt, SavedPrompts, choose, prompt_token_count, unused_prompts_note
from .st_format import (
    kind_of,
    module_stack,
    pooling_config,
    pooling_modes,
    read_json,
    st_config,
    transformer_settings,
)

# the pooling of `--pooling` a causal decoder cannot be embedded with
CAUSAL_REFUSED_POOLING = ("cls",)


def describe(cfg, source: str, folder: Path | None = None, side: str | None = None) -> ModelInfo:
    """The facts of the model `cfg` (an OutputSpec, or a replica's ReplicaSpec) names, for
    `side` (default: cfg's side, else document), without its weights; `folder`: its small files
    where the caller has them already. A model that cannot be found is a UserError."""
    name = model_name(cfg)
    side = side or getattr(cfg, "side", "document")
    folder = folder or model_folder(cfg, source)
    check_pooling_flag(cfg, name, folder)
    describe_backend = (_sentence_transformer if backend_name(cfg) == "sentence-transformers"
                        else _transformers)
    try:
        return describe_backend(name, source, folder, cfg, side)
    except (OSError, ValueError) as exc:
        raise model_error(name, exc) from None


def model_folder(cfg, source: str) -> Path:
    """The model's small files (`model_files.small_files`); a model that cannot be found is
    a UserError."""
    try:
        return small_files(source)
    except (OSError, ValueError) as exc:
        raise model_error(model_name(cfg), exc) from None


def check_pooling_flag(cfg, name: str, folder: Path) -> None:
    """`--pooling` asks for the transformers backend: refused on a sentence-transformers model
    unless that backend is asked for by name (its own modules would be dropped unsaid)."""
    if cfg.pooling and cfg.backend == "auto" and (folder / "modules.json").is_file():
        stack = module_stack(folder) or []
        own = " -> ".join(_module_label(folder, m) for m in stack[1:]) or "its modules"
        raise UserError(f"--pooling {cfg.pooling} contradicts model {name!r}: a "
                        f"sentence-transformers model that pools with its own modules ({own}); "
                        f"drop --pooling, or add --backend transformers to pool its "
                        f"transformer's output yourself")


def _module_label(folder: Path, module: dict) -> str:
    kind = kind_of(module)
    if kind == "Pooling":
        config = read_json(folder / module["path"] / "config.json") or {}
        return f"Pooling({pooling_name(pooling_modes(config))})"
    return kind


def _config(folder: Path, cfg):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(folder), trust_remote_code=cfg.trust_remote_code)


def is_causal(config) -> bool:
    """Whether the model's attention is causal (a decoder): a causal-LM architecture, or a
    model type transformers knows only as a causal LM; not where the config makes the
    attention bidirectional (EmbeddingGemma)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    if getattr(config, "use_bidirectional_attention", False) or not getattr(config, "is_causal",
                                                                            True):
        return False
    if any(a.endswith("ForCausalLM") for a in getattr(config, "architectures", None) or ()):
        return True
    kind = getattr(config, "model_type", "")
    return (kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
            and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES)


def _prompts(folder: Path, cfg, name: str, side: str, tokenizer,
             include_prompt: bool) -> dict:
    """The ModelInfo fields of prompts: `side`'s prompt (the user's, else the model's), the
    query prompt, and the tokens a Pooling without `include_prompt` leaves out."""
    saved = SavedPrompts.of(st_config(folder))
    chosen = choose(saved, name, side, getattr(cfg, "prompt", None),
                    getattr(cfg, "prompt_name", None))
    query = chosen if side == "query" else choose(
        saved, name, "query", getattr(cfg, "query_prompt", None),
        getattr(cfg, "query_prompt_name", None))
    return {"prompt": chosen.text, "prompt_name": chosen.name, "query_prompt": query.text,
            "query_prompt_name": query.name,
            "prompt_skip": 0 if include_prompt else prompt_skip(tokenizer, chosen)}


def prompts_note(folder: Path, info: ModelInfo) -> str | None:
    """A line for the user when the model has prompts that are not applied on their own."""
    return unused_prompts_note(SavedPrompts.of(st_config(folder)),
                                       Prompt(info.prompt, info.prompt_name),
                                       Prompt(info.query_prompt, info.query_prompt_name),
                                       info.name)


def prompt_skip(tokenizer, prompt: Prompt) -> int:
    if not prompt.text:
        return 0
    ids = tokenizer(prompt.text, add_special_tokens=True)["input_ids"]
    return prompt_token_count(ids, set(tokenizer.all_special_ids))


def output_dim(cfg, dim: int, model_truncate: int | None, name: str) -> tuple[int, bool]:
    """The vectors' dimension after `--truncate-dim` (else the model's own `truncate_dim`), and
    whether that cuts them. Refused above the model's dimension."""
    wanted = getattr(cfg, "truncate_dim", None)
    if wanted is not None and not 0 < wanted <= dim:
        raise UserError(f"truncate_dim must be between 1 and the model's dimension {dim} "
                        f"({name}); got {wanted}")
    truncate = wanted or model_truncate
    return (min(dim, truncate), truncate < dim) if truncate else (dim, False)


def _transformers(name: str, source: str, folder: Path, cfg, side: str) -> ModelInfo:
    """AutoModel (+ an adapter, which leaves hidden_size as it is) + cfg's pooling."""
    config = _config(folder, cfg)
    tokenizer = st_tokenizer(str(folder), cfg.trust_remote_code)
    pooling = cfg.pooling or "cls"
    if pooling in CAUSAL_REFUSED_POOLING and is_causal(config):
        raise UserError(f"--pooling {pooling} on {name!r}, a causal decoder, takes a token that "
                        f"sees no other token: use --pooling lasttoken (or the model's own "
                        f"sentence-transformers pooling)")
    params = weight_bytes(weights_of(source, folder), [""])
    if cfg.adapter:
        local = Path(cfg.adapter).expanduser()
        adapter = str(local) if local.is_dir() else cfg.adapter
        params += weight_bytes(weights_of(adapter, small_files(adapter)), [""])
    dim, cut = output_dim(cfg, config.hidden_size, None, name)
    return model_info(name, source, "transformers", tokenizer, source,
                      transformers_max_length(tokenizer, config, cfg.max_seq_length),
                      dim, pooling, bool(cfg.normalize), params,
                      **_prompts(folder, cfg, name, side, tokenizer, True))


def _sentence_transformer(name: str, source: str, folder: Path, cfg, side: str) -> ModelInfo:
    stack = module_stack(folder, side)
    transformer = _input_module(stack, name, side)
    settings = transformer_settings(folder / transformer) if stack else {}
    _check_settings(settings, name)
    config = _config(folder / transformer, cfg)
    lowercase = bool(settings.get("do_lower_case", False))
    tokenizer = st_tokenizer(str(folder / transformer), cfg.trust_remote_code, lowercase)
    if stack is None:   # a plain transformers checkpoint: ST adds its default pooling
        stack, pooling = [], {"pooling_mode": _default_pooling(config)}
    else:
        pooling = pooling_config(folder, stack)
    has_norm = any(kind_of(m) == "Normalize" for m in stack)
    dim, cut = output_dim(cfg, _st_dim(folder, stack, pooling, config.hidden_size),
                          st_config(folder).get("truncate_dim"), name)
    include_prompt = (pooling or {}).get("include_prompt", True)
    return model_info(
        name, source, "sentence-transformers", tokenizer,
        str(folder / transformer) if transformer else source,
        st_max_length(_st_model_length(settings, tokenizer, config), cfg.max_seq_length),
        dim, pooling_name(pooling_modes(pooling)) if pooling is not None else "model-defined",
        (has_norm and not cut) or bool(cfg.normalize),
        weight_bytes(weights_of(source, folder), [transformer, *(m["path"] for m in stack)]),
        lowercase=lowercase, **_prompts(folder, cfg, name, side, tokenizer, include_prompt))


def _default_pooling(config) -> str:
    """sentence-transformers pools the last token of a causal LM, else the mean (its rule)."""
    archs = getattr(config, "architectures", None) or [""]
    causal = archs[0].endswith("ForCausalLM") and getattr(config, "is_causal", True)
    return "lasttoken" if causal else "mean"


def _input_module(stack: list[dict] | None, name: str, side: str) -> str:
    """The folder of the Transformer module a text of `side` enters ("" for a plain
    checkpoint); another input module (static embeddings, CLIP, ...) is refused: ray-embed's
    tokenize stage prepares text for a transformers model only."""
    if stack is None:
        return ""
    if not stack or kind_of(stack[0]) != "Transformer":
        first = kind_of(stack[0]) if stack else "nothing"
        raise UserError(f"model {name!r}: a {side} enters {first}, not a Transformer module; "
                        f"ray-embed embeds with transformers models only")
    return stack[0]["path"]


def _check_settings(settings: dict, name: str) -> None:
    """Transformer settings that change what the model is given beyond token ids: refused
    (ray-embed would give it other input than the library does)."""
    task = settings.get("transformer_task", "feature-extraction")
    if task != "feature-extraction":
        raise UserError(f"model {name!r} runs its transformer as {task!r}; ray-embed embeds "
                        f"with feature-extraction models only")
    if "message" in (settings.get("modality_config") or {}):
        raise UserError(f"model {name!r} takes its input as chat messages (a chat template); "
                        f"ray-embed gives models plain text only")


def _st_dim(folder: Path, modules: list[dict], pooling: dict | None, hidden_size: int) -> int:
    """The output size of the last module that sets one (Dense, Pooling, else the model)."""
    for module in reversed(modules):
        if kind_of(module) == "Dense":
            return int(read_json(folder / module["path"] / "config.json")["out_features"])
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
