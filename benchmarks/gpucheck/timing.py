"""Time the replica's encoder on the sample: docs/s, tokens/s, MFU, peak memory (one budget).

A measurement runs one untimed pass (kernels chosen, allocator warm, and the vectors kept for
the correctness columns), then whole passes over the same token ids until `min_s` of timed work
(at least one). `Encoder.embed_token_lists` copies its output to the host at its end, so a
host clock around a pass times the device's work too.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ray_job.encode.model.shape import ModelShape


@dataclass(frozen=True)
class Peaks:
    """Dense half-precision TFLOP/s: the datasheet's, and the matmul ceiling measured here."""
    datasheet: float | None
    measured: float | None


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak_memory(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mib(device: str) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.startswith("cuda") \
        else None


def repeat_for(run, min_s: float, max_passes: int = 1000) -> tuple[int, float]:
    """Call `run()` until `min_s` seconds have passed (at least once); (passes, seconds)."""
    passes, start = 0, time.perf_counter()
    while True:
        run()
        passes += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_s or passes >= max_passes:
            return passes, elapsed


def rates(docs: int, tokens: int, computed: np.ndarray, passes: int, seconds: float,
          shape: ModelShape, peaks: Peaks) -> dict:
    """docs/s, tokens/s (real tokens), padding efficiency and MFU over `passes` passes."""
    flops = shape.forward_flops(computed) * passes
    achieved = flops / seconds / 1e12
    out = {"passes": passes, "seconds": round(seconds, 4),
           "docs_per_s": round(docs * passes / seconds, 1),
           "tokens_per_s": round(tokens * passes / seconds, 0),
           "padding_efficiency": round(tokens / max(1, int(computed.sum())), 4),
           "achieved_tflops": round(achieved, 2)}
    if peaks.datasheet:
        out["mfu"] = round(achieved / peaks.datasheet, 4)
    if peaks.measured:
        out["mfu_of_measured_peak"] = round(achieved / peaks.measured, 4)
    return out


def time_encoder(encoder, ids, shape: ModelShape, peaks: Peaks,
                 min_s: float) -> tuple[dict, np.ndarray]:
    """One measurement of `encoder` on token ids `ids`; returns (numbers, the vectors)."""
    device = str(encoder.torch_device)
    docs, tokens = len(ids), int(np.diff(ids.offsets.to_numpy()).sum())
    reset_peak_memory(device)
    first = time.perf_counter()
    vectors, computed = encoder.embed_token_lists(ids)
    first = time.perf_counter() - first
    passes, seconds = repeat_for(lambda: encoder.embed_token_lists(ids), min_s)
    return ({**rates(docs, tokens, computed, passes, seconds, shape, peaks),
             "first_pass_s": round(first, 3), "peak_memory_mib": peak_memory_mib(device),
             "max_batch_tokens": encoder.max_batch_tokens, "precision": encoder.precision,
             "device": encoder.device}, vectors)


def matmul_tflops(device: str, dtype: torch.dtype, n: int = 8192, reps: int = 10) -> float | None:
    """A large square matmul's rate (random operands: zeros run faster), as the ceiling."""
    if not device.startswith("cuda"):
        return None
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        a @ b
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1000 / reps
    del a, b
    return round(2 * n ** 3 / seconds / 1e12, 1)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return round(float((a * b).sum(1).min()), 6)
