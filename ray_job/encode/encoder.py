"""The encoder actor: one model replica; token ids in, embeddings out.

Inside a call: sort rows by length, cut token-budget micro-batches, feed each to the device
(`feed`: padded on the host while the previous one computes), run it under inference_mode +
autocast (with the weights in half for the `*-weights` precisions), and put the embeddings back
in input order. Every output batch also says what computed it: columns `device` and
`precision` (one value per batch), for the shard; a replica of a run (`rejects`) also says
which rows were rejected (column `reject`, rundir/rejects.py), and writes nothing itself.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from ..redact import redacting
from ..rundir.rejects import REJECT_COLUMN, reject_cell, reject_cells, reject_record
from ..rundir.replica import ReplicaSpec
from .batching import length_order, token_budget_batches
from .feed import feeder_for
from .isolate import forward_isolating
from .model.loading import load_model
from .model.precision import autocast, replica_choice, weights_dtype
from .model.sizing import replica_budget

# what computed a batch: one value per batch, on every row (the shard writer keeps it per shard)
RAN_COLUMNS = ("device", "precision")
RAN_TYPE = pa.dictionary(pa.int8(), pa.string())


def embedding_array(matrix: np.ndarray) -> pa.FixedSizeListArray:
    flat = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, matrix.shape[1])


def constant_column(value: str, rows: int) -> pa.DictionaryArray:
    """`value` on every row, stored once (dictionary-encoded)."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, np.int8)),
                                          pa.array([value], RAN_TYPE.value_type))


def failed_rows_rejects(table: pa.Table, failed: dict[int, str]) -> list[tuple[int, str]]:
    """(row, its reject as the block carries it) of the rows the model failed on (row -> why)."""
    keys, ids = table.column("key").to_pylist(), table.column("id").to_pylist()
    return [(row, reject_cell("encode", reject_record("model_error", why, keys[row], "encode",
                                                      ids[row])))
            for row, why in sorted(failed.items())]


def lowered_budget(budget: int, fitted_tokens: int, longest_row: int) -> int:
    """The token budget after an out-of-memory: at most half of it, at most the largest part
    of the failed micro-batch that then fit (its rows x width), never under the longest row
    (a row alone always gets its own micro-batch)."""
    lowered = budget // 2 if fitted_tokens <= 0 else min(budget // 2, fitted_tokens)
    return max(longest_row, lowered)


class Encoder:
    """Ray actor class (used with ActorPoolStrategy); also usable in-process.

    `replica`: what a replica needs of the run (`JobRecord.replica`): the model settings, the
    batching options, the model to load, and the driver's resolved device and precision
    (never `auto`), which the replica settles once for its node (`replica_choice`) and keeps
    as `self.device` / `self.precision`. `rejects`: a row the model fails on comes back with
    its reject (the reject column; the shard sink writes it) instead of failing the batch.
    """

    def __init__(self, replica: ReplicaSpec, threads: int | None = None, rejects: bool = False):
        self.device, self.precision = replica_choice(replica.device, replica.precision,
                                                     torch.cuda.is_available())
        if self.device == "cpu" and threads:
            torch.set_num_threads(threads)
        device = "cuda:0" if self.device == "cuda" else self.device  # Ray sets CUDA_VISIBLE_DEVICES
        self.model = load_model(replica, device=device, source=replica.source,
                                compile=replica.compile, revision=replica.revision,
                                dtype=weights_dtype(self.precision))   # `*-weights`: half
        self.torch_device = torch.device(device)
        self.pad_id = self.model.info.pad_token_id
        self.max_batch_tokens = (replica.max_batch_tokens      # None: chosen; lowered after an OOM
                                 or replica_budget(self.model.info, self.torch_device))
        self.feeder = feeder_for(self.torch_device, self.pad_id,
                                 max(self.max_batch_tokens, self.model.info.max_seq_length))
        self.max_batch_rows = replica.max_batch_rows
        self.rejects = rejects         # rows the model fails on: rejected (else raised)

    def embed_token_lists(self, input_ids: pa.ListArray,
                          failed: dict[int, str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings [n, dim] float32 in input order, and each row's padded (computed) length.
        Rows the model fails on are isolated and named in `failed` (row -> why) when it is
        given (their embeddings stay zero); without it a failure is raised.

        The micro-batches stream through the feeder and their outputs stay on the device, in
        length order, until one copy to the host at the end: no host sync per micro-batch, so
        the host pads micro-batch i + 1 while the device computes i. A micro-batch that fails
        goes through the isolating path (`forward_isolating`) on its own.
        """
        offsets = input_ids.offsets.to_numpy().astype(np.int64)
        values = input_ids.values.to_numpy()
        lengths = np.diff(offsets)
        order = length_order(lengths)
        n, dim = len(lengths), self.model.info.dim
        computed = np.zeros(n, dtype=np.int32)
        isolated = []

        def forward(rows: np.ndarray) -> np.ndarray:       # one micro-batch, synchronously
            return self._embed(*self.feeder.stage(values, offsets, rows)).float().cpu().numpy()

        sorted_lengths = lengths[order]
        with torch.inference_mode():
            by_length = torch.zeros((n, dim), dtype=torch.float32, device=self.torch_device)
            parts = self._micro_batches(sorted_lengths, 0)
            while parts:
                part = parts.pop(0)
                rows = order[part]
                try:
                    by_length[part] = self._embed(*self.feeder.stage(values, offsets, rows))
                    computed[rows] = lengths[rows[0]]                # the longest: sorted first
                    continue
                except Exception:  # noqa: BLE001 - a failing micro-batch is isolated, or raised
                    if failed is None:
                        raise
                outcome = forward_isolating(forward, rows)
                isolated.append(outcome)
                failed.update(outcome.failed)
                if outcome.out_of_memory:    # the rest of this call, and the run, in what fits
                    self.max_batch_tokens = lowered_budget(
                        self.max_batch_tokens, outcome.fitted_rows * int(lengths[rows[0]]),
                        int(lengths.max(initial=1)))
                    parts = self._micro_batches(sorted_lengths, part.stop)
            out = np.empty((n, dim), dtype=np.float32)
            out[order] = by_length.cpu().numpy()             # the one host sync of the call
        for outcome in isolated:
            for row, vector in outcome.embeddings.items():
                out[row], computed[row] = vector, lengths[row]
        return out, computed

    def _micro_batches(self, sorted_lengths: np.ndarray, start: int) -> list[slice]:
        """The micro-batches of the rows from `start` on (sorted order), at today's budget."""
        return [slice(start + p.start, start + p.stop) for p in token_budget_batches(
            sorted_lengths[start:], self.max_batch_tokens, self.max_batch_rows)]

    def _embed(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The forward pass of one padded micro-batch on the device (queued, not waited for)."""
        with autocast(self.torch_device.type, self.precision):
            return self.model.embed(ids, mask)

    def __call__(self, batch: pa.Table) -> pa.Table:
        with redacting():
            return self._encode(batch)

    def _encode(self, batch: pa.Table) -> pa.Table:
        """The batch's embeddings and token counts, one row per input row in input order.
        With `rejects`, a row rejected upstream is passed through (not computed) and a row the
        model fails on gets its reject (the reject column, rundir/rejects.py): the shard sink
        writes both; without, a failure is raised."""
        cells = reject_cells(batch)
        todo = np.array([row for row, cell in enumerate(cells) if cell is None], np.int64)
        input_ids = batch.column("input_ids").combine_chunks()
        lengths = np.diff(input_ids.offsets.to_numpy()).astype(np.int32)
        failed: dict[int, str] | None = {} if self.rejects else None
        emb = np.zeros((batch.num_rows, self.model.info.dim), np.float32)
        computed = np.zeros(batch.num_rows, np.int32)
        if len(todo):
            ids = input_ids if len(todo) == batch.num_rows else input_ids.take(pa.array(todo))
            emb[todo], computed[todo] = self.embed_token_lists(ids, failed)
        if failed and len(failed) == len(todo) > 1:     # not a poison row: a broken replica
            first = next(iter(failed.values()))
            raise RuntimeError(f"the model failed on every row of a batch: {first}")
        table = pa.table({
            "key": batch.column("key"), "id": batch.column("id"),
            "text_hash": batch.column("text_hash"),
            "embedding": embedding_array(emb),
            "n_tokens": pa.array(lengths), "n_computed": pa.array(computed),
            "device": constant_column(self.device, batch.num_rows),
            "precision": constant_column(self.precision, batch.num_rows),
        })
        if not self.rejects:
            return table
        for row, cell in failed_rows_rejects(table, {int(todo[r]): why
                                                     for r, why in failed.items()}):
            cells[row] = cell
        return table.append_column(REJECT_COLUMN, pa.array(cells, pa.string()))
