"""The rules that derive what the job needs to know about a model (`ModelInfo`, part of the
run's record, rundir/job.py). Shared by the two ways of learning it: from a loaded model
(`models`, on a replica) and from the model's files alone (`model_facts`, on the driver), so
that both give the same answer."""
from __future__ import annotations

from ...errors import UserError
from ...rundir.job import ModelInfo

BUNDLED_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
DEFAULT_MAX_LENGTH = 512
NO_SEPARATOR = "\n"
# bytes of one weight as a replica holds it: the backends load weights in fp32 (autocast
# lowers the precision of the computation, not of the weights)
LOADED_BYTES_PER_PARAM = 4


def model_name(cfg) -> str:
    return cfg.model or BUNDLED_ALIASES[1]


def backend_name(cfg) -> str:
    """`auto` means sentence-transformers, unless a pooling or an adapter asks for transformers."""
    if cfg.backend != "auto":
        return cfg.backend
    return "transformers" if (cfg.pooling or cfg.adapter) else "sentence-transformers"


def model_error(name: str, exc: Exception) -> UserError:
    """A model that cannot be loaded or described, as one line for the user."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return UserError(f"cannot load model {name!r}: {first}")


def _max_length(configured: int | None, model_limit: int | None, override: int | None) -> int:
    limits = [v for v in (configured, model_limit) if v]
    length = min(limits) if limits else DEFAULT_MAX_LENGTH
    return min(override, length) if override else length


def position_limit(config) -> int | None:
    """Usable positions of a BERT/RoBERTa-style model (RoBERTa reserves pad_token_id + 1)."""
    limit = getattr(config, "max_position_embeddings", None)
    if limit and getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        limit -= (getattr(config, "pad_token_id", 1) or 0) + 1
    return limit


def transformers_max_length(tokenizer, config, override: int | None) -> int:
    """transformers backend: the tokenizer's limit, the model's positions, the config's cap."""
    configured = tokenizer.model_max_length if tokenizer.model_max_length < 1e6 else None
    return _max_length(configured, position_limit(config), override)


def st_max_length(model_length: int | None, override: int | None) -> int:
    """sentence-transformers backend: the model's max_seq_length, lowered by the config's cap."""
    if override:
        model_length = min(override, model_length or override)
    return int(model_length or DEFAULT_MAX_LENGTH)


def pooling_name(mode) -> str:
    """A pooling mode (or several, concatenated) as one string: `mean`, `cls+mean`."""
    return mode if isinstance(mode, str) else "+".join(mode)


def separator(tokenizer) -> str:
    """What `{sep}` becomes: the tokenizer's separator token (BERT's [SEP], RoBERTa's </s>),
    else a line break. A decoder (Qwen3, Gemma) has no separator: its end-of-sequence token
    between title and abstract would tell the model the text ends there."""
    return tokenizer.sep_token or NO_SEPARATOR


def model_info(name: str, source: str, backend: str, tokenizer, tokenizer_source: str,
               max_len: int, dim: int, pooling: str, normalized: bool,
               param_bytes: int, **calling) -> ModelInfo:
    """`calling`: how the model's authors call it (prompts, lowercase: ModelInfo's fields)."""
    return ModelInfo(
        name=name, source=source, backend=backend, tokenizer_source=tokenizer_source,
        max_seq_length=int(max_len), sep_token=separator(tokenizer),
        pad_token_id=int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0),
        dim=int(dim), pooling=pooling, normalized=bool(normalized), param_bytes=int(param_bytes),
        **calling)
