"""What a template may hold (pure functions): the text template of the output spec and the URL
template of the run options. Plain `{field}` names only, and `{sep}` (the tokenizer's separator)
in a text template. The config checks refuse anything else before a run starts; the read stage
renders what they let through (`read.text.TextTemplate`)."""
from __future__ import annotations

import re
import string

SEP_FIELD = "sep"
FIELD_NAME = re.compile(r"[^\W\d][\w-]*")     # a record field: no spec, conversion, . or []


def not_utf8(value: str) -> str | None:
    """Why `value` cannot be encoded as UTF-8 (a lone surrogate, say); None when it can."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"cannot be encoded as UTF-8 ({exc.reason} at character {exc.start})"
    return None


def plain_fields(template: str) -> tuple[str, ...]:
    """The names of a template's fields, in order, without repeats. Only plain `{name}` is
    allowed (letters, digits, `_`, `-`); a format spec (`{title:d}`), a conversion
    (`{title!r}`), attribute or index access (`{title.x}`, `{title[0]}`) or a position (`{}`,
    `{0}`) is a ValueError, one line: it would fail, or blow up, on every row."""
    problem = not_utf8(template)
    if problem:
        raise ValueError(f"it {problem}")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(str(exc).splitlines()[0]) from None
    names: list[str] = []
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion is not None or not FIELD_NAME.fullmatch(name):
            written = "{" + name + (f"!{conversion}" if conversion else "") + \
                (f":{spec}" if spec else "") + "}"
            raise ValueError(f"{written} is not allowed (only plain {{field}} names)")
        if name not in names:
            names.append(name)
    return tuple(names)


def template_fields(template: str) -> tuple[str, ...]:
    """The field names a text template uses (`sep` among them), in order, without repeats;
    ValueError, one line, for a template that is not plain fields or names no record field."""
    try:
        names = plain_fields(template)
    except ValueError as exc:
        raise ValueError(f"bad text template {template!r}: {exc}") from None
    if not [n for n in names if n != SEP_FIELD]:
        raise ValueError(f"text template {template!r} names no record field")
    return names
