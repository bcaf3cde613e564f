"""Checks of config values: strict types (a YAML string "false" is not a boolean, 2.5 is not
a count), allowed choices, positive counts and floors, all as the settings declare them
(settings/declared.py), and the rules that tie settings together. Every failure is one
ConfigError line."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ConfigError
from .settings import DEVICES, PRECISIONS, SETTINGS, TYPE_WORDS  # noqa: F401 - DEVICES and

# PRECISIONS stay importable here: the encoder's tests walk them
from .template_syntax import plain_fields, template_fields

FIELD_SETTINGS = {s.name: s for s in SETTINGS if s.part != "applied"}
# setting -> the values it may take (for `exports`, each of its values)
CHOICES = {s.name: s.choices for s in FIELD_SETTINGS.values() if s.choices}
POSITIVE = tuple(s.name for s in FIELD_SETTINGS.values() if s.positive)
AT_LEAST = tuple(s for s in FIELD_SETTINGS.values() if s.at_least is not None)
# a read unit holds a few records at least (read/plan_size.py says why)
MIN_BLOCK_BYTES_OPTION = FIELD_SETTINGS["block_bytes"].at_least
# a prompt is given by its text or by the model's name for it, not both
PROMPT_PAIRS = (("prompt", "prompt_name"), ("query_prompt", "query_prompt_name"))


def _type_ok(value: Any, base: type) -> bool:
    if base is bool:
        return isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, base)


def check_types(values: Mapping[str, Any]) -> None:
    """Each setting in `values` has its declared type (or None where that is allowed)."""
    for name, value in values.items():
        setting = FIELD_SETTINGS.get(name)
        if setting is None or (value is None and setting.optional):
            continue
        if not _type_ok(value, setting.base_type):
            word = TYPE_WORDS.get(setting.base_type, setting.base_type.__name__)
            raise ConfigError(f"{name} must be {word}; got {value!r}")


def check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")


def validate(spec, options) -> None:
    """Choices, positive counts and the rules that tie settings together."""
    values = {**vars(spec), **vars(options)}
    check_types(values)
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
    for setting in AT_LEAST:
        value = values[setting.name]
        if value is not None and value < setting.at_least:
            raise ConfigError(f"{setting.name} must be at least {setting.at_least:,} "
                              f"({setting.at_least_why}); got {value:,}")
    if spec.adapter and spec.backend == "sentence-transformers":
        raise ConfigError("an adapter needs the transformers backend (drop backend, or set it "
                          "to transformers)")
    if "{" not in spec.text:
        raise ConfigError(f"text must be a template with at least one {{field}}; got {spec.text!r}")
    check_templates(spec.text, options.resolved_url_template)
    if spec.query:
        from .sql_query import check_query  # imports duckdb: only for a query

        check_query(spec.query)
    if options.drop_duplicates and not options.exports:
        raise ConfigError("drop_duplicates leaves near duplicates out of the exports: give at "
                          "least one export (--export)")
    if not 0 < options.dedup_threshold <= 1:
        raise ConfigError(f"dedup_threshold is a cosine in (0, 1]; got "
                          f"{options.dedup_threshold!r}")
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
