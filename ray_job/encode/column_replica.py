"""The class Ray Data starts as each model replica of `embed_dataset`: the product's `Encoder`
(imported in the replica's process only, as `replica_actor.EncoderReplica` does), adding an
embedding column to the user's own rows instead of making a run's shard rows."""
from __future__ import annotations

import pyarrow as pa

from ..rundir.replica import ReplicaSpec


class EmbeddingColumnReplica:
    """`Encoder(replica, threads)` in the replica's process; each batch comes back with its
    `ids_column` (token ids) replaced by `column` (the embeddings, fixed-size lists of
    float32), every other column as it was."""

    def __init__(self, replica: ReplicaSpec, ids_column: str, column: str,
                 threads: int | None = None):
        from .encoder import Encoder

        self.encoder = Encoder(replica, threads)
        self.ids_column, self.column = ids_column, column

    def __call__(self, batch: pa.Table) -> pa.Table:
        from .encoder import embedding_array

        emb, _ = self.encoder.embed_token_lists(batch.column(self.ids_column).combine_chunks())
        rest = batch.drop_columns([self.ids_column])
        return rest.append_column(self.column, embedding_array(emb))
