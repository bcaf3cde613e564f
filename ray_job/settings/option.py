"""`Command` and `CommandOption`: a command of `ray-embed` and an argument of one or more
commands that is not a job setting (`--docs`, `-k`, a run directory), as a user sees them.

Plain data, like `Setting`: the argparse subparsers (settings/parsers.py) and the commands'
sections of docs/reference.md (settings/reference_commands.py) are made from these
declarations (settings/commands.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Command:
    name: str                        # the subcommand: `ray-embed NAME`
    help: str                        # its line in `ray-embed --help`


@dataclass(frozen=True)
class CommandOption:
    flag: str                        # "--docs", "-k"; a positional argument: its name
    commands: tuple[str, ...]        # the commands taking it
    help: str = ""                   # the argument's line in the command's --help
    doc: str = ""                    # the reference's text; empty: `help`
    type: type = str                 # str, int or float; bool: a switch (off unless given)
    default: Any = None
    default_text: str = ""           # the reference's default when not the value itself
    metavar: str | None = None
    choices: tuple = ()
    positive: bool = False           # a count or amount above 0: any other value is refused
                                     # in one line (parsers.refuse_non_positive, exit code 2)
    required: bool = False

    @property
    def positional(self) -> bool:
        return not self.flag.startswith("-")

    @property
    def switch(self) -> bool:
        return self.type is bool

    @property
    def dest(self) -> str:
        """The attribute of the parsed arguments holding its value (argparse's rule)."""
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def description(self) -> str:
        return self.doc or self.help
