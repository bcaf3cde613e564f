"""Feeding micro-batches to the device: pad the next one on the host while the device computes.

`feeder_for(device, pad_id, capacity)` picks one by device type (`FEEDERS`):

* `HostFeeder` (CPU, MPS): pad into fresh arrays and hand them over; no pinned memory, no streams.
* `CudaFeeder`: pad into a reused pinned host buffer (two, alternating, each sized to the token
  budget) and copy it to the GPU with `non_blocking=True` on a side stream. The compute stream
  waits for that copy on the device (`wait_stream`), never on the host, and the copied tensor is
  marked as used by the compute stream (`record_stream`) so the allocator does not hand its
  memory out while the forward pass still reads it. The host waits only before it rewrites a
  pinned buffer, for the copy out of it two micro-batches ago to finish (an event).

Since kernels are queued asynchronously, `stage(i + 1)` runs on the host while the GPU still
computes micro-batch i, as long as the caller does not synchronise in between (it keeps its
outputs on the device and copies them to the host once per call).
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from .batching import pad_rows


class Feeder(Protocol):
    def stage(self, values: np.ndarray, offsets: np.ndarray,
              rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The token lists `rows`, padded: (input_ids, attention_mask) int64 on the device."""


class HostFeeder:
    """Devices that share the host's memory or copy synchronously (CPU, MPS)."""

    def __init__(self, device: torch.device, pad_id: int, capacity: int = 0):
        self.device, self.pad_id = device, pad_id

    def stage(self, values, offsets, rows):
        ids, mask = pad_rows(values, offsets, rows, self.pad_id)
        return torch.from_numpy(ids).to(self.device), torch.from_numpy(mask).to(self.device)


class _PinnedSlot:
    """One pinned host buffer (ids then mask, int64) and the event of the last copy out of it."""

    def __init__(self, tokens: int):
        self.buffer = torch.empty(2 * tokens, dtype=torch.int64, pin_memory=True)
        self.copied = torch.cuda.Event()
        self.tokens = tokens


class CudaFeeder:
    """Pinned, reused host buffers and asynchronous copies on a side stream."""

    def __init__(self, device: torch.device, pad_id: int, capacity: int):
        self.device, self.pad_id = device, pad_id
        self.copy_stream = torch.cuda.Stream(device)
        self.slots = [_PinnedSlot(capacity), _PinnedSlot(capacity)]
        self.turn = 0

    def stage(self, values, offsets, rows):
        rows = np.asarray(rows, dtype=np.int64)
        width = int((offsets[rows + 1] - offsets[rows]).max()) if len(rows) else 0
        tokens = len(rows) * width
        index, self.turn = self.turn, self.turn ^ 1
        slot = self.slots[index]
        slot.copied.synchronize()        # the copy out of this buffer two batches ago is done
        if tokens > slot.tokens:         # a single row over the budget: grow this buffer
            slot = self.slots[index] = _PinnedSlot(tokens)
        host = slot.buffer[: 2 * tokens]
        flat = host.numpy()
        pad_rows(values, offsets, rows, self.pad_id,
                 out=(flat[:tokens].reshape(len(rows), width),
                      flat[tokens:].reshape(len(rows), width)))
        compute = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self.copy_stream):
            on_device = host.to(self.device, non_blocking=True)
            slot.copied.record(self.copy_stream)
        compute.wait_stream(self.copy_stream)          # the forward pass starts after the copy
        on_device.record_stream(compute)               # ... and keeps its memory while it reads
        return (on_device[:tokens].view(len(rows), width),
                on_device[tokens:].view(len(rows), width))


FEEDERS: dict[str, type] = {"cuda": CudaFeeder}


def feeder_for(device: torch.device, pad_id: int, capacity: int) -> Feeder:
    """The feeder for `device`'s type; `capacity`: tokens of the largest micro-batch expected."""
    return FEEDERS.get(device.type, HostFeeder)(device, pad_id, capacity)
