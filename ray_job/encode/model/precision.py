"""Pick the device and the numeric precision; detect native bf16 on CPUs instead of assuming.

Two steps, each done once: the driver resolves `auto` for the whole pool (`pick_device`,
`pick_precision`), and each replica turns that request into what it runs on its node
(`replica_choice`).

A precision names the whole numeric regime, and is recorded per shard as it ran:
`fp32`; `fp16` / `bf16`: fp32 weights, the forward pass under autocast (matmuls in half);
`fp16-weights` / `bf16-weights`: the weights themselves in half (half the memory, no per-op
weight casts), still under autocast. They give different vectors, so each is its own name.
`pick_precision` is the rule where nothing is timed (`plan`, an in-process encoder): fp16 on
CUDA (and MPS), bf16 on CPUs that multiply bf16 natively, else fp32. A run's `auto` is timed
instead (`calibrate`); a resumed run keeps its recorded precision and a `--previous` run the
old one's (the merge and `--previous` refuse to mix them).
"""
from __future__ import annotations

import contextlib
import platform
import sys
from pathlib import Path

from ...errors import UserError

# torch dtypes by name: this module is imported by the driver, which never imports torch
AUTOCAST_DTYPES = {"fp16": "float16", "bf16": "bfloat16",
                   "fp16-weights": "float16", "bf16-weights": "bfloat16"}
WEIGHT_DTYPES = {"fp16-weights": "float16", "bf16-weights": "bfloat16"}   # else float32
RESOLVED = ("fp32", *AUTOCAST_DTYPES)
X86_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def pick_device(requested: str) -> str:
    """The device this process sees (torch's view): `auto` -> cuda, mps or cpu."""
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda requested but torch sees no CUDA GPU")
    if requested == "mps" and not torch.backends.mps.is_available():
        raise UserError("device mps requested but this machine has no Apple MPS")
    return requested


def cpu_flags(cpuinfo: str) -> set[str]:
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True where the CPU multiplies bf16 in hardware (x86 AMX / AVX512-BF16, Arm BF16).

    torch's own mkldnn check also says yes where bf16 is only emulated (slower than fp32),
    so read the CPU flags instead.
    """
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.exists() else ""
    flags = cpu_flags(cpuinfo)
    if flags & set(X86_BF16_FLAGS):
        return True
    return platform.machine() in ("aarch64", "arm64") and "bf16" in flags


def pick_precision(requested: str, device: str, native_bf16: bool | None = None) -> str:
    if requested != "auto":
        return requested
    if device in ("cuda", "mps"):
        return "fp16"
    if native_bf16 is None:
        native_bf16 = cpu_has_native_bf16()
    return "bf16" if native_bf16 else "fp32"


def replica_choice(device: str, precision: str, cuda_available: bool,
                   native_bf16: bool | None = None) -> tuple[str, str]:
    """What one replica runs, given the driver's resolved request and this node.

    A node without CUDA runs a cuda request on its CPU (rather than failing the pool). There,
    fp16 becomes bf16 where the CPU multiplies bf16 natively, else fp32 (fp16 is emulated on
    CPUs, far slower than fp32); `fp16-weights` likewise becomes `bf16-weights` or fp32. A
    request made for the CPU in the first place (device cpu) runs as asked.
    """
    if device not in ("cpu", "cuda", "mps") or precision not in RESOLVED:
        raise ValueError(f"a replica needs a resolved device and precision, not "
                         f"{device!r} / {precision!r}")
    if device == "cuda" and not cuda_available:
        if precision.startswith("fp16"):
            native = cpu_has_native_bf16() if native_bf16 is None else native_bf16
            precision = precision.replace("fp16", "bf16") if native else "fp32"
        return "cpu", precision
    return pick_device(device), precision


def may_have_mps() -> bool:
    """Apple's MPS exists on macOS only: elsewhere no torch import is needed to say no."""
    return sys.platform == "darwin"


def weights_dtype(precision: str):
    """The torch dtype a replica holds its weights in under `precision` (a resolved name)."""
    import torch

    return getattr(torch, WEIGHT_DTYPES.get(precision, "float32"))


def autocast(device: str, precision: str):
    """A context manager that runs the forward pass in the chosen precision."""
    dtype = AUTOCAST_DTYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=device, dtype=getattr(torch, dtype))
