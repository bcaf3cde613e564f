"""A micro-batch the model fails on: find the rows that make it fail, so they can be rejected
while the rest of the batch is embedded (pure: the forward pass is passed in).

Out of device memory is not a poison row: the batch is split and retried, and the caller is
told to lower its token budget. A batch whose every row fails on its own is not poison either
(the model or the device is broken): that error is raised.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Forward = Callable[[np.ndarray], np.ndarray]      # rows (indices) -> embeddings [len, dim]


@dataclass
class Outcome:
    embeddings: dict[int, np.ndarray] = field(default_factory=dict)   # row -> vector
    failed: dict[int, str] = field(default_factory=dict)              # row -> why
    out_of_memory: bool = False
    fitted_rows: int = 0              # the most rows that went through in one forward pass


def is_out_of_memory(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


def forward_isolating(forward: Forward, rows: np.ndarray) -> Outcome:
    outcome = Outcome()
    first_error = _split(forward, np.asarray(rows), outcome)
    if first_error is not None and len(rows) > 1 and len(outcome.failed) == len(rows):
        raise first_error
    return outcome


def _split(forward: Forward, rows: np.ndarray, outcome: Outcome) -> BaseException | None:
    try:
        vectors = forward(rows)
    except Exception as exc:  # noqa: BLE001 - any failure of one batch is examined, not fatal
        if is_out_of_memory(exc):
            outcome.out_of_memory = True
        if len(rows) == 1:
            why = "out of device memory for this row alone" if is_out_of_memory(exc) else _line(exc)
            outcome.failed[int(rows[0])] = why
            return exc
        half = len(rows) // 2
        left = _split(forward, rows[:half], outcome)
        right = _split(forward, rows[half:], outcome)
        return left or right or exc
    outcome.fitted_rows = max(outcome.fitted_rows, len(rows))
    for row, vector in zip(rows, vectors, strict=True):
        outcome.embeddings[int(row)] = vector
    return None


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
