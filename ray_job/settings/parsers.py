"""The argparse subparsers of every command, made from the declarations: a command's own
arguments (settings/commands.py) and, after `--config`, the settings' flags (flags.py)."""
from __future__ import annotations

from typing import Any

from .commands import COMMANDS, SETTINGS_FILE, options_of
from .flags import add_setting_flags
from .option import CommandOption


def add_command_parsers(subparsers: Any) -> None:
    """One subparser per declared command on `subparsers` (`add_subparsers()`'s), in their
    declared order: that of --help."""
    for command in COMMANDS:
        parser = subparsers.add_parser(command.name, help=command.help)
        for option in options_of(command.name):
            parser.add_argument(option.flag, **_argument_kwargs(option))
            if option is SETTINGS_FILE:
                add_setting_flags(parser, command.name)


def _argument_kwargs(option: CommandOption) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"help": option.help or None}
    if option.switch:
        kwargs["action"] = "store_true"
        return kwargs
    if option.type is not str:
        kwargs["type"] = option.type
    if option.choices:
        kwargs["choices"] = list(option.choices)
    if option.metavar:
        kwargs["metavar"] = option.metavar
    if option.required:
        kwargs["required"] = True
    if not option.positional:
        kwargs["default"] = option.default
    return kwargs


def refuse_non_positive(args: Any, command: str) -> None:
    """The one check of every option declared `positive` for `command`: a value given at or
    below zero is refused in one line naming the flag (ConfigError: exit code 2)."""
    from ..errors import ConfigError

    for option in options_of(command):
        value = getattr(args, option.dest, None)
        if option.positive and value is not None and not value > 0:     # NaN too
            least = "at least 1" if option.type is int else "above 0"
            raise ConfigError(f"{option.flag} must be {least}; got {value:g}")
