"""The job settings, each declared once (declared.py) as a `Setting` (setting.py), and the
commands with their other arguments, each declared once (commands.py) as a `Command` or a
`CommandOption` (option.py); the config, the command line's parsers (flags.py, parsers.py) and
docs/reference.md (reference.py) are made from them. Imports nothing but the standard
library: `ray-embed --help` reads it."""
from .commands import COMMAND_OPTIONS, COMMANDS, INDEX_VECTORS, MAP_SAMPLE
from .declared import DEVICES, OPTION_SETTINGS, PRECISIONS, SETTINGS, SPEC_SETTINGS
from .option import Command, CommandOption
from .presets import PRESETS
from .setting import APPLIED, OPTIONS, SPEC, TYPE_WORDS, Setting

__all__ = ["APPLIED", "COMMANDS", "COMMAND_OPTIONS", "DEVICES", "INDEX_VECTORS", "MAP_SAMPLE",
           "OPTIONS", "OPTION_SETTINGS", "PRECISIONS", "PRESETS", "SETTINGS", "SPEC",
           "SPEC_SETTINGS", "TYPE_WORDS", "Command", "CommandOption", "Setting"]
