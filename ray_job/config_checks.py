"""Checks of config values: strict types (a YAML string "false" is not a boolean, 2.5 is not
a count) and allowed choices (`CHOICES`, which the command line's flags offer too). Every
failure is one ConfigError line."""
from __future__ import annotations

import types
import typing
from functools import lru_cache
from typing import Any, Mapping

from .errors import ConfigError
from .template_syntax import plain_fields, template_fields

PRECISIONS = ("auto", "fp32", "fp16", "bf16", "fp16-weights", "bf16-weights")
DEVICES = ("auto", "cpu", "cuda", "mps")
# setting -> the values it may take (for `exports`, each of its values)
CHOICES = {"precision": PRECISIONS, "device": DEVICES,
           "backend": ("auto", "sentence-transformers", "transformers"),
           "on_missing_field": ("reject", "empty"), "pooling": ("cls", "mean", "lasttoken"),
           "storage_dtype": ("float32", "float16"), "compression": ("gzip", "lzf"),
           "exports": ("parquet", "duckdb", "int8", "binary", "lance")}
# a prompt is given by its text or by the model's name for it, not both
PROMPT_PAIRS = (("prompt", "prompt_name"), ("query_prompt", "query_prompt_name"))
POSITIVE = ("limit", "max_seq_length", "replicas", "threads_per_replica", "block_bytes",
            "upload_every", "max_batch_tokens", "max_batch_rows", "shard_rows",
            "gpus_per_replica", "cpus_per_replica", "demo_docs", "truncate_dim")
# a read unit holds a few records at least (read/plan_size.py says why)
MIN_BLOCK_BYTES_OPTION = 4 * 1024
TYPE_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


@lru_cache(maxsize=None)
def _field_types(cls) -> dict[str, tuple[type, bool]]:
    """name -> (base type, None allowed) for the dataclass `cls`."""
    found = {}
    for name, hint in typing.get_type_hints(cls).items():
        args = typing.get_args(hint)
        optional = isinstance(hint, types.UnionType) and type(None) in args
        base = next(a for a in args if a is not type(None)) if optional else hint
        found[name] = (typing.get_origin(base) or base, optional)
    return found


def _type_ok(value: Any, base: type) -> bool:
    if base is bool:
        return isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, base)


def check_types(cls, values: Mapping[str, Any]) -> None:
    """Each value of a field of `cls` has that field's type (None where it is optional)."""
    for name, (base, optional) in _field_types(cls).items():
        if name not in values:
            continue
        value = values[name]
        if value is None and optional:
            continue
        if not _type_ok(value, base):
            word = TYPE_WORDS.get(base, base.__name__)
            raise ConfigError(f"{name} must be {word}; got {value!r}")


def check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")


def validate(spec, options) -> None:
    """Choices, positive counts and the rules that tie settings together."""
    check_types(type(spec), vars(spec))
    check_types(type(options), vars(options))
    values = {**vars(spec), **vars(options)}
    for name, choices in CHOICES.items():
        for value in values[name] if isinstance(values[name], tuple) else (values[name],):
            if value is not None:
                check_choice(name, value, choices)
    for text, name in PROMPT_PAIRS:
        if values[text] is not None and values[name] is not None:
            raise ConfigError(f"{text} and {name} both say which prompt to use: give one")
    for name in POSITIVE:
        if values[name] is not None and values[name] <= 0:
            raise ConfigError(f"{name} must be a positive number; got {values[name]!r}")
    if options.block_bytes is not None and options.block_bytes < MIN_BLOCK_BYTES_OPTION:
        raise ConfigError(f"block_bytes must be at least {MIN_BLOCK_BYTES_OPTION:,} (4 KiB; a "
                          f"read unit of a few records); got {options.block_bytes:,}")
    if spec.adapter and spec.backend == "sentence-transformers":
        raise ConfigError("an adapter needs the transformers backend (drop backend, or set it "
                          "to transformers)")
    if "{" not in spec.text:
        raise ConfigError(f"text must be a template with at least one {{field}}; got {spec.text!r}")
    check_templates(spec.text, options.resolved_url_template)
    if spec.query:
        from .sql_query import check_query  # imports duckdb: only for a query

        check_query(spec.query)
    if options.upload_every and not options.upload:
        raise ConfigError("upload_every needs upload (the destination)")
    if not options.output:
        raise ConfigError("output must be a directory path")


def check_templates(text: str, url_template: str | None) -> None:
    """The text template uses plain record fields and {sep}; a URL template only {id}, the
    one field finalize has for every row (checked here, before Ray starts, not per row)."""
    try:
        template_fields(text)
    except ValueError as exc:
        raise ConfigError(f"text: {exc}") from None
    if url_template is None:
        return
    try:
        names = plain_fields(url_template)
    except ValueError as exc:
        raise ConfigError(f"url_template {url_template!r}: {exc}; it may only use {{id}}") from None
    if names != ("id",):
        raise ConfigError(f"url_template {url_template!r} must use {{id}} and no other field "
                          f"(uses: {', '.join(names) or 'none'})")
