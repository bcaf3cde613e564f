"""Where merged rows come from: shard files and (incremental runs) the reuse lists, whose
vectors are rows of the previous embeddings.h5. Each source gives its index columns once and
then, as often as the merge needs, the vectors of some of its rows (read, copied, released)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..read.previous import previous_embeddings
from ..rundir.rundir import RunDir
from ..rundir.shards import embedding_matrix

INDEX_COLUMNS = ["key", "id", "text_hash", "n_tokens", "n_computed"]


@dataclass(frozen=True)
class ShardSource:
    """A shard file: rows, their embeddings and what ran them."""
    run_dir: RunDir
    name: str

    def index_table(self) -> pa.Table:
        return self.run_dir.shards.read(self.name, INDEX_COLUMNS)

    def vectors(self, rows: np.ndarray, first: bool) -> tuple[np.ndarray, dict]:
        """Embeddings of `rows` (a copy) and what ran the shard. The first read checks the
        whole shard against its checksum; later reads (the shard spans several output
        chunks) read the embedding column alone."""
        if first:
            emb, meta = self.run_dir.shards.embeddings(self.name)
            return emb[rows], meta
        return embedding_matrix(self.run_dir.shards.read(self.name, ["embedding"]))[rows], {}


@dataclass(frozen=True)
class ReuseSource:
    """Rows of an incremental run whose embeddings come from the previous embeddings.h5."""
    run_dir: RunDir
    name: str
    previous_h5: str

    def index_table(self) -> pa.Table:
        table = self.run_dir.reads.read_reuse(self.name)
        zeros = pa.array(np.zeros(table.num_rows, np.int32))
        return table.select(["key", "id", "text_hash"]).append_column(
            "n_tokens", zeros).append_column("n_computed", zeros)

    def vectors(self, rows: np.ndarray, first: bool) -> tuple[np.ndarray, dict]:
        """The old file's vectors of `rows`, each row checked to hold the id and text the
        reuse list says (never another paper's vector, whatever happened to the old file)."""
        table = self.run_dir.reads.read_reuse(self.name)
        previous = table.column("previous_row").to_numpy()[rows]
        ids = table.column("id").take(pa.array(rows)).to_pylist()
        t_hash = table.column("text_hash").to_numpy()[rows]
        return previous_embeddings(self.previous_h5, previous, ids, t_hash), {}


def row_sources(run_dir: RunDir, previous_h5: str | None) -> list:
    """Shards in name order (= by smallest key), then reuse lists: the order that breaks ties
    between copies of one key (the first source wins)."""
    sources: list = [ShardSource(run_dir, name) for name in run_dir.shards.names()]
    if previous_h5:
        sources += [ReuseSource(run_dir, name, previous_h5) for name in run_dir.reads.reuse_names()]
    return sources
