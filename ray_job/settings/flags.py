"""The settings' flags on a command's argparse parser, and the settings a parsed command line
gives. Every flag defaults to None: a setting not given is left to the YAML file, a preset or
the config's default (config.build_config)."""
from __future__ import annotations

import argparse
from typing import Any

from .declared import SETTINGS
from .setting import Setting


def settings_of(command: str) -> tuple[Setting, ...]:
    """The settings `command` takes as flags."""
    return tuple(s for s in SETTINGS if s.flag is not None and command in s.commands)


def add_setting_flags(parser: argparse.ArgumentParser, command: str) -> None:
    for setting in settings_of(command):
        parser.add_argument(setting.flag_name, dest=setting.name, default=None,
                            help=setting.help or None, **_flag_kwargs(setting))


def _flag_kwargs(setting: Setting) -> dict[str, Any]:
    if setting.switch:
        return {"action": "store_const", "const": True}
    kwargs: dict[str, Any] = {}
    if setting.repeatable:
        kwargs["action"] = "append"
    if setting.base_type in (int, float):
        kwargs["type"] = setting.base_type
    if setting.choices:
        kwargs["choices"] = list(setting.choices)
    if setting.metavar:
        kwargs["metavar"] = setting.metavar
    return kwargs


def settings_from_args(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """name -> the value given on the command line (None: not given)."""
    return {s.name: getattr(args, s.name, None) for s in settings_of(command)}
