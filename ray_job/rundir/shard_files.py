"""The run's shards (`RunDir.shards`): shards/ of the run directory, one Arrow IPC file per
encoded block (the format: shards.py), and shards/corrupt/ for those set aside."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..storage.store import Store
from . import layout
from .shards import (
    CorruptShard,
    decode_shard,
    encode_shard,
    rows_in_name,
    shard_ran_with,
    verified_embeddings,
)


@dataclass(frozen=True)
class ShardFiles:
    """The shards under `store` (the run directory's own, fenced or not)."""
    store: Store

    @property
    def _folder(self) -> Store:
        return self.store.sub(layout.SHARDS)

    def write(self, table: pa.Table, config_hash: str | None = None) -> str | None:
        """Write one encoded block as a complete shard, stamped with the run's `config_hash`
        (finalize sets aside a shard of other settings); returns its name (None if empty)."""
        encoded = encode_shard(table, config_hash)
        if encoded is None:
            return None
        name, data = encoded
        self._folder.write_bytes(name, data)
        return name

    def names(self) -> list[str]:
        return layout.declared(self.store, layout.SHARDS, layout.SHARD_GLOB)

    def rows_done(self) -> int:
        return sum(rows_in_name(name) for name in self.names())

    def read(self, name: str, columns: list[str] | None = None) -> pa.Table:
        with self._folder.open_random(name) as source:
            return decode_shard(source, name, columns)

    def embeddings(self, name: str) -> tuple[np.ndarray, dict[str, str]]:
        """A shard's embeddings after its checksum check, and what ran it (device, precision)."""
        table = self.read(name)
        return verified_embeddings(table, name), shard_ran_with(table)

    def quarantine(self, name: str, why: str) -> CorruptShard:
        """Move a bad shard to shards/corrupt/ (its rows are then recomputed by the next run);
        returns the error that names it."""
        if self._folder.exists(name):
            self._folder.move(name, f"{layout.CORRUPT}/{name}")
        return CorruptShard(name, f"{why}; moved to {layout.SHARDS}/{layout.CORRUPT}/, re-run "
                                  f"the job to recompute its rows")

    def corrupt_count(self) -> int:
        return len(layout.declared(self.store, f"{layout.SHARDS}/{layout.CORRUPT}",
                                   layout.SHARD_GLOB))

    def keys(self, on_quarantine=None) -> Iterator[tuple[str, np.ndarray]]:
        """(name, keys) of every readable shard, one at a time (a resume folds them without
        holding them all). A shard that does not parse is quarantined (and
        `on_quarantine(error)` called); temp files left by a killed writer are removed."""
        for name in layout.declared(self.store, layout.SHARDS, layout.SHARD_TEMP_GLOB):
            self._folder.remove(name)
        for name in self.names():
            try:
                keys = self.read(name, ["key"]).column("key").to_numpy()
            except CorruptShard as exc:
                error = self.quarantine(name, exc.why)
                if on_quarantine:
                    on_quarantine(error)
                continue
            yield name, keys

    def done_keys(self, on_quarantine=None) -> np.ndarray:
        """Sorted unique keys of every readable shard (one array of all of them: for tests and
        small runs; a resume uses `keys`, see read/resume.py)."""
        parts = [keys for _, keys in self.keys(on_quarantine)]
        keys = np.sort(np.concatenate(parts)) if parts else np.empty(0, np.int64)
        # a sort and a neighbour comparison: np.unique does the same with far more overhead
        return keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if len(keys) else keys

    def local_file(self, name: str, scratch: Path) -> Path:
        """A local file with the shard's bytes (the file itself when the run is local)."""
        if self.store.is_local:
            return self._folder.local_path / name
        self._folder.get(name, scratch / name)
        return scratch / name
