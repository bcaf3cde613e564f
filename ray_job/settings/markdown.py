"""Text made safe for the Markdown tables of docs/reference.md."""
from __future__ import annotations


def cell(text: str) -> str:
    """Text safe in a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")
