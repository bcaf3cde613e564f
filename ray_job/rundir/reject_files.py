"""The run's rejects (`RunDir.rejects`): rejects/ of the run directory, JSON Lines files of the
rows that are not embedded (the records: rejects.py). One file per read unit (the read
stage's), one per row rejected later (named after its key: tokenize, encode; the shard sink
writes them) and duplicates.jsonl (finalize's)."""
from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..storage.store import Store
from . import layout
from .rejects import parse_rejects, reject_line, rejects_text


@dataclass(frozen=True)
class RejectFiles:
    """The rejects under `store` (the run directory's own, fenced or not); `scratch`: a fresh
    local folder for the duplicates file (RunDir.scratch)."""
    store: Store
    scratch: Callable[[], contextlib.AbstractContextManager[Path]] = contextlib.nullcontext

    @property
    def _folder(self) -> Store:
        return self.store.sub(layout.REJECTS)

    def _names(self, pattern: str) -> list[str]:
        return layout.declared(self.store, layout.REJECTS, pattern)

    def write(self, name: str, records: list[dict]) -> None:
        """Write (or clear) one rejects file whole; the same unit always writes the same file."""
        if records:
            self._folder.write_text(name, rejects_text(records))
        else:
            self._folder.remove(name)

    def write_unit(self, unit_name: str, records: list[dict]) -> None:
        self.write(layout.unit_rejects(unit_name), records)

    def write_rows(self, stage: str, records: list[dict]) -> None:
        """Rows rejected one by one after the read stage (`stage`: tokenize, encode), each in
        a file named after its key: a retried or resumed batch rewrites the same files."""
        for record in records:
            self.write(layout.row_rejects(stage, record["key"]), [record])

    def write_duplicates(self, records: Iterable[dict]) -> None:
        """rejects/duplicates.jsonl, streamed through a local file (removed when none)."""
        with self.scratch() as folder:
            path = folder / layout.DUPLICATES
            with open(path, "w", encoding="utf-8") as out:
                out.writelines(reject_line(r) for r in records)
            if path.stat().st_size:
                self._folder.put(path, layout.DUPLICATES)
            else:
                self._folder.remove(layout.DUPLICATES)

    def records(self) -> Iterator[dict]:
        for name in self._names(layout.REJECTS_GLOB):
            yield from parse_rejects(self._folder.read_text(name))

    def tally(self) -> dict[str, collections.Counter]:
        """Rejects file name -> its records by reason; every file read once."""
        names = self._names(layout.REJECTS_GLOB)
        return {name: collections.Counter(r["reason"] for r in parse_rejects(data.decode()))
                for name, data in self._folder.read_many(names)}

    def counts(self) -> dict[str, int]:
        counts = collections.Counter(r["reason"] for r in self.records())
        return dict(sorted(counts.items()))

    def unit_counts(self) -> dict[str, int]:
        """unit name -> rows the read stage rejected in it (from its rejects file)."""
        return {layout.unit_of(name): self._folder.read_text(name).count("\n")
                for name in self._names(layout.UNIT_REJECTS_GLOB)}

    def drop_rows(self, keys: np.ndarray) -> None:
        """Forget the row rejects of these keys (an attempt failed them, a later one embedded
        them: the row is in the output, not rejected)."""
        wanted = set(keys.tolist())
        for name in self._names(layout.ROW_REJECTS_GLOB):
            if layout.key_of_row_rejects(name) in wanted:
                self._folder.remove(name)

    def row_keys(self) -> np.ndarray:
        """Keys of the rows rejected one by one after the read stage (e.g. by the tokenizer)."""
        keys = [layout.key_of_row_rejects(n) for n in self._names(layout.ROW_REJECTS_GLOB)]
        return np.array(sorted(keys), dtype=np.int64)
