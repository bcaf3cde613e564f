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


def load_array(path: str, compression: str | None) -> list:
    """The array's items; RejectRow when the file is not one JSON array."""
    try:
        with open_decompressed(path, compression) as fh:
            data = fh.read()
        items = json.loads(data.removeprefix(BOM).decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RejectRow("bad_utf8", f"{path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise RejectRow("bad_json", f"{path} is not one JSON array: {exc}") from None
    except DAMAGED as exc:
        raise RejectRow("truncated_file", f"{path}: {exc}") from None
    if not isinstance(items, list):
        raise RejectRow("bad_json", f"{path} is not one JSON array")
    return items
