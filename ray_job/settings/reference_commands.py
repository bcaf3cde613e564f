"""docs/reference.md's sections of the commands: each command's own arguments (those that are
not settings), made from their declarations (settings/commands.py)."""
from __future__ import annotations

from .commands import COMMANDS, options_of
from .flags import settings_of
from .markdown import cell
from .option import Command, CommandOption

TYPE_WORDS = {int: "whole number", float: "number", str: "text"}


def commands_markdown() -> list[str]:
    lines = ["## Commands", "", "Each command's own arguments: those that are not settings."]
    for command in COMMANDS:
        lines += ["", *_section(command)]
    return lines


def _section(command: Command) -> list[str]:
    lines = [f"### `ray-embed {command.name}`", "", cell(command.help) + "."]
    if settings_of(command.name):
        lines[-1] += (" It also takes the flags of the settings above whose Commands column "
                      "names it.")
    lines += ["", "| Argument | Values | Default | What it does |", "|---|---|---|---|"]
    lines += [_row(option) for option in options_of(command.name)]
    return lines


def _row(option: CommandOption) -> str:
    return (f"| {_argument(option)} | {cell(_values(option))} | {cell(_default(option))} | "
            f"{cell(option.description)} |")


def _argument(option: CommandOption) -> str:
    if option.positional:
        return f"`{option.metavar or option.flag}` (positional)"
    if option.switch or option.choices:
        return f"`{option.flag}`"
    return f"`{option.flag} {option.metavar or option.dest.upper()}`"


def _values(option: CommandOption) -> str:
    if option.switch:
        return "switch"
    if option.choices:
        return " | ".join(f"`{c}`" for c in option.choices)
    return TYPE_WORDS[option.type] + (" > 0" if option.positive else "")


def _default(option: CommandOption) -> str:
    if option.positional or option.required:
        return "required"
    if option.default_text:
        return option.default_text
    if option.switch:
        return "off"
    if option.default is None:
        return "none"
    return f"`{option.default}`"
