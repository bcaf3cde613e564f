"""A `.json` file holding one JSON array of records (a common export), instead of JSON Lines.

Told apart by its first character ('[', after whitespace and a UTF-8 byte-order mark). Such a
file is one read unit, parsed whole; a record's position (its key) is its index in the array.
"""
from __future__ import annotations

import json

from .decompress import DAMAGED, open_decompressed
from .text import RejectRow

BOM = b"\xef\xbb\xbf"
PEEK_BYTES = 4096


def is_json_array(path: str, compression: str | None) -> bool:
    try:
        with open_decompressed(path, compression) as fh:
            head = fh.read(PEEK_BYTES)
    except DAMAGED:
        return False                  # a damaged file: the JSONL reader says what is wrong
    return head.removeprefix(BOM).lstrip().startswith(b"[")


def loads_json(text: str):
    """json.loads, any failure a bad_json RejectRow: invalid JSON, and also what the json
    module raises beyond JSONDecodeError (an integer of more than 4,300 digits: ValueError;
    nesting deeper than the interpreter's recursion limit: RecursionError)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RejectRow("bad_json", (str(exc).splitlines() or [type(exc).__name__])[0]) from None


def load_array(path: str, compression: str | None) -> list:
    """The array's items; RejectRow when the file is not one JSON array."""
    try:
        with open_decompressed(path, compression) as fh:
            data = fh.read()
        items = loads_json(data.removeprefix(BOM).decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RejectRow("bad_utf8", f"{path}: {exc}") from None
    except RejectRow as exc:
        raise RejectRow("bad_json", f"{path} is not one JSON array: {exc.detail}") from None
    except DAMAGED as exc:
        raise RejectRow("truncated_file", f"{path}: {exc}") from None
    if not isinstance(items, list):
        raise RejectRow("bad_json", f"{path} is not one JSON array")
    return items
