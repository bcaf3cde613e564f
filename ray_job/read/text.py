"""Text templates over a record's fields (pure functions).

`{title}{sep}{abstract}`: `{sep}` is the tokenizer's separator token, every other name is a field
of the record. A record that cannot fill the template is rejected with a reason, never dropped.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Mapping

SEP_FIELD = "sep"
FIELD_NAME = re.compile(r"[^\W\d][\w-]*")     # a record field: no spec, conversion, . or []


class RejectRow(Exception):
    """A row that cannot be embedded; `reason` is a short machine-readable code, `row_id` the
    row's id where the reader knows it (printable)."""

    def __init__(self, reason: str, detail: str = "", row_id: str | None = None):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.row_id = row_id


def printable(value: str) -> str:
    """`value` with what UTF-8 cannot encode (lone surrogates) escaped as `\\ud800`: safe to
    write in a rejects file or a message."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def utf8_checked(value: str, reason: str, what: str, row_id: str | None = None) -> str:
    """`value` itself when it can be encoded as UTF-8 (text hashes, Arrow and tokenizers all
    need that); else RejectRow(reason). A lone surrogate (`"\\ud800"` in JSON) cannot."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RejectRow(reason, f"{what} cannot be encoded as UTF-8 ({exc.reason} at "
                                f"character {exc.start})", row_id) from None
    return value


@dataclass(frozen=True)
class TextTemplate:
    template: str
    sep: str = " "
    clean_whitespace: bool = True
    missing: str = "reject"          # reject | empty

    def __post_init__(self) -> None:
        self.fields  # a bad template is a ValueError here, on the driver, not in every row

    @cached_property
    def fields(self) -> tuple[str, ...]:
        return template_fields(self.template)

    def render(self, record: Mapping[str, Any]) -> str:
        values = {name: self._value(record, name) for name in self.fields if name != SEP_FIELD}
        if not any(values.values()):
            raise RejectRow("empty_text", f"no text in {', '.join(values)}")
        return self.template.format(sep=self.sep, **values)

    def _value(self, record: Mapping[str, Any], name: str) -> str:
        value = record.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if self.missing == "empty":
                return ""
            raise RejectRow(f"missing_{name}", f"field {name!r} is missing, null or empty")
        if not isinstance(value, str):
            raise RejectRow(f"bad_type_{name}",
                            f"field {name!r} is {type(value).__name__}, not a string")
        utf8_checked(value, "bad_text", f"field {name!r}")
        return " ".join(value.split()) if self.clean_whitespace else value


def plain_fields(template: str) -> tuple[str, ...]:
    """The names of a template's fields, in order, without repeats. Only plain `{name}` is
    allowed (letters, digits, `_`, `-`); a format spec (`{title:d}`), a conversion
    (`{title!r}`), attribute or index access (`{title.x}`, `{title[0]}`) or a position (`{}`,
    `{0}`) is a ValueError, one line: it would fail, or blow up, on every row."""
    try:
        utf8_checked(template, "bad_template", "it")
        parsed = list(string.Formatter().parse(template))
    except RejectRow as exc:
        raise ValueError(exc.detail) from None
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


def record_id(record: Mapping[str, Any], id_field: str) -> str:
    value = record.get(id_field)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RejectRow("missing_id", f"field {id_field!r} is missing, null or empty")
    if isinstance(value, (dict, list, float, bool, bytes, bytearray)):
        raise RejectRow("bad_type_id", f"field {id_field!r} is {type(value).__name__}")
    row_id = str(value).strip()
    return utf8_checked(row_id, "bad_id", f"field {id_field!r}", printable(row_id))
