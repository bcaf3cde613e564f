"""The settings' and the commands' declarations (ray_job/settings) are the one source of the
config's fields, the command line's parsers and docs/reference.md; `--help` stays light."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ray_job import cli
from ray_job.cli import make_parser
from ray_job.config import OPTION_FIELDS, SPEC_FIELDS, JobConfig
from ray_job.errors import ConfigError
from ray_job.settings import COMMAND_OPTIONS, COMMANDS, SETTINGS
from ray_job.settings.commands import options_of
from ray_job.settings.flags import settings_of
from ray_job.settings.reference import REFERENCE, REGENERATE, reference_markdown

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pyarrow", "numpy", "h5py", "torch", "transformers", "ray")


def test_docs_reference_is_what_the_declarations_make():
    assert REFERENCE.read_text() == reference_markdown(), (
        f"docs/reference.md is out of date: regenerate it with `{REGENERATE}`")


def test_every_config_field_is_one_declared_setting():
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    assert set(SPEC_FIELDS + OPTION_FIELDS) | {"preset"} == set(names)


def flag_argv(setting) -> list[str]:
    """The setting's flag with a value it may take."""
    if setting.switch:
        return [setting.flag_name]
    if setting.choices:
        return [setting.flag_name, setting.choices[0]]
    return [setting.flag_name, "1" if setting.base_type in (int, float) else "x"]


@pytest.mark.parametrize("command, required",
                         [("run", []), ("bench", []), ("plan", ["--gpus", "0"])])
def test_each_setting_is_a_flag_of_the_commands_it_names_and_only_those(command, required, capsys):
    parser = make_parser()
    for setting in (s for s in SETTINGS if s.flag is not None):
        argv = [command, *required, *flag_argv(setting)]
        if command in setting.commands:
            assert getattr(parser.parse_args(argv), setting.name) is not None
        else:
            with pytest.raises(SystemExit):
                parser.parse_args(argv)
            assert "unrecognized arguments" in capsys.readouterr().err


def subparsers() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in make_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_the_declared_commands_are_the_commands_cli_runs_in_the_declared_order():
    assert list(subparsers()) == [c.name for c in COMMANDS]
    assert set(cli.COMMANDS) == {c.name for c in COMMANDS}
    named = {c for s in SETTINGS for c in s.commands} | {c for o in COMMAND_OPTIONS
                                                         for c in o.commands}
    assert named <= {c.name for c in COMMANDS}


@pytest.mark.parametrize("command", [c.name for c in COMMANDS])
def test_a_command_takes_its_declared_options_and_settings_and_nothing_else(command):
    parser = subparsers()[command]
    declared = options_of(command)
    flags = {o.flag for o in declared if not o.positional}
    flags |= {s.flag_name for s in settings_of(command)} | {"-h"}
    assert {f for a in parser._actions for f in a.option_strings if f != "--help"} == flags
    positionals = [a.dest for a in parser._actions if not a.option_strings]
    assert positionals == [o.dest for o in declared if o.positional]


@pytest.mark.parametrize("command", [c.name for c in COMMANDS])
def test_each_option_has_its_declared_default_choices_and_metavar(command):
    actions = {a.dest: a for a in subparsers()[command]._actions}
    for option in options_of(command):
        action = actions[option.dest]
        assert action.default == (False if option.switch else option.default)
        assert tuple(action.choices or ()) == option.choices
        assert action.metavar == option.metavar
        assert action.required == (option.required or option.positional)
        assert option.description, f"{command} {option.flag}: nothing says what it does"


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.choices and s.part != "applied"],
                         ids=lambda s: s.name)
def test_a_value_outside_the_choices_is_one_line_naming_them(setting):
    bad = ("nope",) if setting.repeatable else "nope"
    with pytest.raises(ConfigError) as err:
        JobConfig.of(**{setting.name: bad})
    assert str(err.value) == (f"{setting.name} must be one of {', '.join(setting.choices)}; "
                              f"got 'nope'")


@pytest.mark.parametrize("argv", [["-m", "ray_job", "run", "--help"], ["-m", "ray_job", "--help"],
                                  ["-m", "ray_job", "plan", "--help"]])
def test_help_imports_nothing_heavy(argv):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-X", "importtime", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0]
                for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "ray_job" in imported
    assert sorted(imported & set(HEAVY)) == []
