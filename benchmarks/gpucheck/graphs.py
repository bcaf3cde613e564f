"""CUDA graphs for a small model: does replaying captured forward passes beat launching them?

The replica pads each micro-batch to its own longest row, so shapes vary and a graph (fixed
shapes) cannot be replayed. Here micro-batches are cut on shape buckets instead: widths
rounded up to a multiple of `step` tokens, a fixed row count per width (the token budget over
the width), the last batch of a width filled with one-token dummy rows. One graph per width,
captured once into a shared memory pool, then replayed with the inputs copied into its static
buffers. The same bucketed batches run eagerly too, so the graphs' own gain is apart from the
bucketing's padding cost. On a CPU (`--dry-run`) nothing is captured: the bucketed path runs
eagerly, which checks the plan, the buffers and the row order.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ray_job.encode.batching import length_order, pad_rows


@dataclass(frozen=True)
class Bucket:
    rows: np.ndarray        # indices of the real rows, longest first
    width: int              # padded length (a multiple of the step)
    capacity: int           # rows of the graph for this width (>= len(rows))


def bucket_plan(lengths: np.ndarray, max_tokens: int, max_rows: int, step: int) -> list[Bucket]:
    """Micro-batches of fixed shapes: (capacity, width) depends on the width alone."""
    lengths = np.maximum(np.asarray(lengths, dtype=np.int64), 1)
    order = length_order(lengths)
    widths = -(-lengths[order] // step) * step
    plan = []
    for width in sorted(set(widths.tolist()), reverse=True):
        rows = order[widths == width]
        capacity = max(1, min(max_rows, max_tokens // width))
        for start in range(0, len(rows), capacity):
            plan.append(Bucket(rows[start:start + capacity], int(width), capacity))
    return plan


def fill(values, offsets, bucket: Bucket, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """The bucket's inputs at its full shape: real rows, then dummy rows of one token."""
    ids = np.full((bucket.capacity, bucket.width), pad_id, dtype=np.int64)
    mask = np.zeros((bucket.capacity, bucket.width), dtype=np.int64)
    real_ids, real_mask = pad_rows(values, offsets, bucket.rows, pad_id)
    n, w = real_ids.shape
    ids[:n, :w], mask[:n, :w] = real_ids, real_mask
    mask[n:, 0] = 1
    return ids, mask


class BucketedRunner:
    """Runs `embed(ids, mask)` on a bucket plan, eagerly or by replaying one graph per shape."""

    def __init__(self, embed, device: torch.device, pad_id: int, dim: int, dtype,
                 capture: bool):
        self.embed, self.device, self.pad_id, self.dim = embed, device, pad_id, dim
        self.dtype, self.capture = dtype, capture and device.type == "cuda"
        self.graphs: dict[tuple[int, int], tuple] = {}
        self.pool = torch.cuda.graph_pool_handle() if self.capture else None
        self.capture_s = 0.0

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.dtype is None:
            return self.embed(ids, mask)
        with torch.autocast(self.device.type, dtype=self.dtype, cache_enabled=False):
            return self.embed(ids, mask)

    def _graph(self, shape: tuple[int, int]):
        if shape not in self.graphs:
            started = time.perf_counter()
            ids = torch.zeros(shape, dtype=torch.int64, device=self.device)
            mask = torch.ones(shape, dtype=torch.int64, device=self.device)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    self.forward(ids, mask)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool):
                out = self.forward(ids, mask)
            self.graphs[shape] = (graph, ids, mask, out)
            self.capture_s += time.perf_counter() - started
        return self.graphs[shape]

    def run(self, values: np.ndarray, offsets: np.ndarray, plan: list[Bucket]) -> np.ndarray:
        n = sum(len(b.rows) for b in plan)
        with torch.inference_mode():
            out = torch.zeros((n, self.dim), dtype=torch.float32, device=self.device)
            for bucket in plan:
                ids, mask = (torch.from_numpy(a) for a in fill(values, offsets, bucket,
                                                              self.pad_id))
                index = torch.from_numpy(bucket.rows).to(self.device)
                if self.capture:
                    graph, static_ids, static_mask, static_out = self._graph(tuple(ids.shape))
                    static_ids.copy_(ids, non_blocking=True)
                    static_mask.copy_(mask, non_blocking=True)
                    graph.replay()
                    result = static_out
                else:
                    result = self.forward(ids.to(self.device), mask.to(self.device))
                out[index] = result[: len(bucket.rows)].float()
            return out.cpu().numpy()
