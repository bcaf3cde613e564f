"""docs/reference.md: the settings' table, the presets and each command's own arguments, made
from their declarations.

`python -m ray_job.settings.reference` writes it (`--check`: exit 1 when the committed file
differs); tests/driver/test_settings.py compares the two."""
from __future__ import annotations

import sys
from pathlib import Path

from .declared import SETTINGS
from .markdown import cell as _cell
from .presets import PRESETS
from .reference_commands import commands_markdown
from .setting import SPEC, Setting

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference.md"
REGENERATE = "python -m ray_job.settings.reference"
# what the reference adds to a setting of the output spec, by how it is hashed
SPEC_NOTES = {"always": " (output spec)", "when_set": " (output spec, when set)", "never": ""}


def reference_markdown() -> str:
    lines = [
        "# Settings reference",
        "",
        (f"<!-- generated from ray_job/settings/declared.py and commands.py by "
         f"`{REGENERATE}`: edit the declarations, not this file -->"),
        "",
        ("Every setting is a key of a YAML file (`ray-embed run --config job.yaml`; `-` or `_` "
         "in a key) and, where it has one, a flag; a flag given wins over the YAML file, which "
         "wins over a preset. Settings of the output spec define the embeddings: a run "
         "directory made with another spec is refused."),
        "",
        "| Flag | YAML key | Values | Default | Commands | What it does |",
        "|---|---|---|---|---|---|",
    ]
    lines += [_row(s) for s in SETTINGS]
    lines += ["", "## Presets", "", "| Preset | Settings |", "|---|---|"]
    lines += [f"| `{name}` | {_cell(', '.join(f'{k}={v!r}' for k, v in values.items()))} |"
              for name, values in sorted(PRESETS.items())]
    lines += ["", *commands_markdown()]
    return "\n".join(lines) + "\n"


def _row(setting: Setting) -> str:
    flag = "YAML only"
    if setting.flag_name:
        flag = f"`{setting.flag_name}{' ' + setting.metavar if setting.metavar else ''}`"
        flag += " (repeatable)" if setting.repeatable else ""
    commands = ", ".join(setting.commands) or "-"
    what = setting.description
    if setting.part == SPEC:
        what += SPEC_NOTES[setting.hashed]
    return (f"| {flag} | `{setting.name}` | {_cell(_values(setting))} | "
            f"{_cell(_default(setting))} | {commands} | {_cell(what)} |")


def _values(setting: Setting) -> str:
    if setting.choices:
        return " | ".join(f"`{c}`" for c in setting.choices)
    words = {bool: "true / false", int: "whole number", float: "number", str: "text",
             tuple: "list of text"}
    text = words[setting.base_type]
    if setting.at_least is not None:
        text += f" >= {setting.at_least:,}"
    elif setting.positive:
        text += " > 0"
    return text


def _default(setting: Setting) -> str:
    if setting.default_text:
        return setting.default_text
    if setting.default is None or setting.default == ():
        return "none"
    if isinstance(setting.default, bool):
        return "on" if setting.default else "off"
    return f"`{setting.default}`"


def main(argv: list[str]) -> int:
    text = reference_markdown()
    if "--check" in argv:
        if not REFERENCE.is_file() or REFERENCE.read_text() != text:
            print(f"{REFERENCE} is out of date: run `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE.write_text(text)
    print(f"wrote {REFERENCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
