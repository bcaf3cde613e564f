"""Text templates over a record's fields (pure functions).

`{title}{sep}{abstract}`: `{sep}` is the tokenizer's separator token, every other name is a
field of the record (what a template may hold is `template_syntax`'s, shared with the config
checks). A record that cannot fill the template is rejected with a reason, never dropped.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ..template_syntax import SEP_FIELD, not_utf8, template_fields

# The text cap (`TextTemplate.max_bytes`) of a model that reads max_seq_length tokens. The
# tokenizer keeps only the first max_seq_length tokens anyway; cutting the text before it
# spares tokenizing the rest of a huge text. A cut never changes a text's tokens (and so its
# embedding) when its first max_seq_length tokens lie in the first max_bytes bytes. The arXiv
# sample's title [SEP] abstract texts run 4.67 bytes per MiniLM token on average, 6.74 at most
# (measured), so 16 leaves room for long words, formulas and other scripts; with MiniLM (256
# tokens) the cap is 4 KiB and cuts none of the sample's texts (1,961 bytes at most).
TEXT_BYTES_PER_TOKEN = 16


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
    problem = not_utf8(value)
    if problem:
        raise RejectRow(reason, f"{what} {problem}", row_id)
    return value


@dataclass(frozen=True)
class TextTemplate:
    template: str
    sep: str = " "
    clean_whitespace: bool = True
    missing: str = "reject"          # reject | empty
    max_bytes: int | None = None     # texts cut to this many UTF-8 bytes (cap_text); None: no cap

    def __post_init__(self) -> None:
        _ = self.fields  # a bad template is a ValueError here, on the driver, not in every row

    @cached_property
    def fields(self) -> tuple[str, ...]:
        return template_fields(self.template)

    def render(self, record: Mapping[str, Any]) -> str:
        values = {name: self._value(record, name) for name in self.fields if name != SEP_FIELD}
        if not any(values.values()):
            raise RejectRow("empty_text", f"no text in {', '.join(values)}")
        return self.template.format(sep=self.sep, **values)

    def would_cap(self, record: Mapping[str, Any]) -> bool:
        """Whether the record's text would be cut to max_bytes; for rows that are not
        rendered (already embedded), so the count of capped texts is the same on every
        attempt. Renders only a record whose fields could exceed the cap."""
        if self.max_bytes is None:
            return False
        values = [v for v in (record.get(n) for n in self.fields if n != SEP_FIELD)
                  if isinstance(v, str)]
        if sum(len(v) if v.isascii() else 4 * len(v) for v in values) + \
                len(self.template.encode("utf-8")) + 4 * len(self.sep) <= self.max_bytes:
            return False
        try:
            return cap_text(self.render(record), self.max_bytes)[1]
        except Exception:  # noqa: BLE001 - a row that cannot render is not embedded
            return False

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


def record_id(record: Mapping[str, Any], id_field: str) -> str:
    """The row's id, exactly: a string as it is (never stripped or normalised), an integer
    as its decimal digits (JSON 1 and "1" are then the same id: the second is a
    duplicate_id). Empty or all-whitespace: missing_id; any other type (float, bool, list,
    object, ...): bad_type_id; a NUL or a lone surrogate, which embeddings.h5 cannot store
    as the same bytes: bad_id."""
    value = record.get(id_field)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RejectRow("missing_id", f"field {id_field!r} is missing, null, empty or blank")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RejectRow("bad_type_id", f"field {id_field!r} is {type(value).__name__}, not a "
                                       f"string or an integer")
    row_id = value if isinstance(value, str) else str(value)
    if "\x00" in row_id:
        raise RejectRow("bad_id", f"field {id_field!r} holds a NUL character (U+0000), which "
                                  f"embeddings.h5 cannot store exactly", printable(row_id))
    return utf8_checked(row_id, "bad_id", f"field {id_field!r}", printable(row_id))


def text_byte_cap(max_seq_length: int | None) -> int | None:
    """The byte cap of texts for a model reading `max_seq_length` tokens (None: no cap)."""
    return max_seq_length * TEXT_BYTES_PER_TOKEN if max_seq_length else None


def cap_text(text: str, max_bytes: int | None) -> tuple[str, bool]:
    """`text` cut to at most `max_bytes` UTF-8 bytes, and whether it was cut. The cut is at a
    character boundary, and back at the last whitespace when that is in the second half (so
    no word is cut in two: every word before the cut tokenizes as in the full text); a text
    with no whitespace there is cut at the character boundary. `text` must be valid UTF-8
    (rendered texts are)."""
    if max_bytes is None or len(text) * 4 <= max_bytes:
        return text, False                      # fast path: cannot exceed the cap
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text, False
    head = data[:max_bytes].decode("utf-8", "ignore")   # drops only a cut last character
    for i in range(len(head) - 1, len(head) // 2 - 1, -1):
        if head[i].isspace():
            return head[:i].rstrip(), True
    return head, True


def reads_record(seen: int, capped: int, max_bytes: int | None) -> dict:
    """What the read stage writes for a unit (RunDir.reads.write_unit)."""
    return {"seen": seen, "texts_capped": capped, "text_max_bytes": max_bytes}


def text_cap_summary(reads: dict[str, dict]) -> dict:
    """report.json's `text_cap`: the cap the read stage applied and how many texts it cut."""
    caps = sorted({r["text_max_bytes"] for r in reads.values() if r.get("text_max_bytes")})
    return {"max_bytes": caps[-1] if caps else None,
            "texts_capped": sum(r.get("texts_capped", 0) for r in reads.values())}
