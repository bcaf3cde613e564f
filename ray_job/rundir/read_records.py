"""What the read stage recorded (`RunDir.reads`): reads/, one JSON file per read unit with
what it counted there (rows seen, ...), and reuse/, per unit of an incremental run the rows
taken from the previous output (Arrow IPC, the format: reuse.py) and its reused/new/changed
counts. Each file is written whole; the same unit always writes the same files."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa

from ..storage.store import Store
from . import layout
from .reuse import COUNT_NAMES, decode_reuse, encode_reuse


@dataclass(frozen=True)
class ReadRecords:
    """The read records under `store` (the run directory's own, fenced or not)."""
    store: Store

    @property
    def _reads(self) -> Store:
        return self.store.sub(layout.READS)

    @property
    def _reuse(self) -> Store:
        return self.store.sub(layout.REUSE)

    def write_unit(self, unit_name: str, counts: dict) -> None:
        self._reads.write_text(layout.unit_reads(unit_name), json.dumps(counts))

    def units(self) -> dict[str, dict]:
        """unit name -> what the read stage counted in it (rows seen, ...)."""
        names = layout.declared(self.store, layout.READS, layout.READS_GLOB)
        return {layout.unit_of(name): json.loads(data)
                for name, data in self._reads.read_many(names)}

    def write_reuse(self, unit_name: str, table: pa.Table, counts: dict) -> None:
        """The reused rows of one unit, then its reused/new/changed counts (each file whole)."""
        self._reuse.write_bytes(layout.unit_reuse_rows(unit_name), encode_reuse(table))
        self._reuse.write_text(layout.unit_reuse_counts(unit_name), json.dumps(counts))

    def reuse_names(self) -> list[str]:
        return layout.declared(self.store, layout.REUSE, layout.REUSE_ROWS_GLOB)

    def read_reuse(self, name: str) -> pa.Table:
        with self._reuse.open_random(name) as source:
            return decode_reuse(source)

    def reuse_counts(self) -> dict[str, int]:
        totals = dict.fromkeys(COUNT_NAMES, 0)
        for name in layout.declared(self.store, layout.REUSE, layout.REUSE_COUNTS_GLOB):
            for k, v in json.loads(self._reuse.read_text(name)).items():
                totals[k] += v
        return totals
