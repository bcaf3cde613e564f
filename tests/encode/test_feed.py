"""Feeding micro-batches to the device: a feeder per device type; on CUDA pinned, reused buffers
and copies on a side stream (checked where a GPU is present), the same padded batches everywhere."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ray_job.encode.batching import length_order, pad_rows, token_budget_batches
from ray_job.encode.feed import FEEDERS, CudaFeeder, HostFeeder, feeder_for


def token_lists(seed: int = 0, rows: int = 300):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 256, size=rows)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return rng.integers(0, 30522, size=offsets[-1]).astype(np.int32), offsets, lengths


def test_the_feeder_is_chosen_by_device_type():
    assert type(feeder_for(torch.device("cpu"), 0, 1024)) is HostFeeder
    assert FEEDERS["cuda"] is CudaFeeder


def test_the_host_feeder_gives_the_padded_batch_on_the_cpu():
    values, offsets, _ = token_lists()
    rows = np.array([5, 2, 9])
    ids, mask = feeder_for(torch.device("cpu"), 3, 1024).stage(values, offsets, rows)
    want_ids, want_mask = pad_rows(values, offsets, rows, 3)
    assert ids.dtype == mask.dtype == torch.int64 and ids.device.type == "cpu"
    np.testing.assert_array_equal(ids.numpy(), want_ids)
    np.testing.assert_array_equal(mask.numpy(), want_mask)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_cuda_feeder_stages_every_batch_exactly_while_reusing_two_pinned_buffers():
    values, offsets, lengths = token_lists()
    device = torch.device("cuda:0")
    feeder = feeder_for(device, 0, 2048)
    buffers = {slot.buffer.data_ptr() for slot in feeder.slots}
    assert all(slot.buffer.is_pinned() for slot in feeder.slots)
    order = length_order(lengths)
    staged = []
    for part in token_budget_batches(lengths[order], 2048, 64):
        rows = order[part]
        ids, mask = feeder.stage(values, offsets, rows)
        staged.append((rows, ids * mask))          # computed on the compute stream, async
    torch.cuda.synchronize()
    assert {slot.buffer.data_ptr() for slot in feeder.slots} == buffers      # reused, not new
    for rows, got in staged:
        ids, mask = pad_rows(values, offsets, rows, 0)
        np.testing.assert_array_equal(got.cpu().numpy(), ids * mask)
    long_row = np.array([int(np.argmax(lengths))])            # over the capacity: buffer grows
    small = feeder_for(device, 0, 8)
    ids, _ = small.stage(values, offsets, long_row)
    np.testing.assert_array_equal(ids.cpu().numpy(), pad_rows(values, offsets, long_row, 0)[0])
