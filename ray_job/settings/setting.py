"""`Setting`: one job setting as a user sees it: its YAML key and flag, its type and default,
the values it may take, the commands that take it, and the words that explain it.

A setting is plain data; the config's dataclasses, the value checks, the command line's flags
and docs/reference.md are all made from these declarations (settings/declared.py)."""
from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any

SPEC = "spec"          # defines the embeddings: part of OutputSpec (hashed)
OPTIONS = "options"    # how to run: part of RunOptions (not hashed)
APPLIED = "applied"    # read by the config and expanded into other settings (`preset`)

RUN, BENCH, PLAN = "run", "bench", "plan"
TYPE_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


@dataclass(frozen=True)
class Setting:
    name: str                        # the YAML key and the config field
    type: Any                        # str, int, float, bool or tuple[str, ...]; `| None` when
                                     # None (unset: decided later) is a value it may have
    default: Any
    part: str                        # SPEC, OPTIONS or APPLIED
    help: str = ""                   # the flag's line in --help
    doc: str = ""                    # the reference's text; empty: `help`
    default_text: str = ""           # the reference's default when not the value itself
    flag: str | None = ""            # "": from the name; None: a YAML-only setting
    metavar: str | None = None
    choices: tuple = ()              # the values it may take (each value, when repeatable)
    positive: bool = False           # a count or amount above 0
    at_least: int | None = None      # a floor above 0, with why it is there
    at_least_why: str = ""
    commands: tuple[str, ...] = (RUN, BENCH)
    hashed: str = "always"           # SPEC only: "always", "when_set" (added after the first
                                     # release: a run made before it resumes), or "never"

    @property
    def optional(self) -> bool:
        return isinstance(self.type, types.UnionType) and type(None) in typing.get_args(self.type)

    @property
    def base_type(self) -> type:
        """The type of a value, None aside (`tuple` for a repeatable setting)."""
        hint = self.type
        if self.optional:
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        return typing.get_origin(hint) or hint

    @property
    def switch(self) -> bool:
        return self.base_type is bool

    @property
    def repeatable(self) -> bool:
        return self.base_type is tuple

    @property
    def flag_name(self) -> str | None:
        if self.flag is None:
            return None
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def description(self) -> str:
        return self.doc or self.help
