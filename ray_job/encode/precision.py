"""Pick the device and the numeric precision; detect native bf16 on CPUs instead of assuming."""
from __future__ import annotations

import contextlib
import platform
from pathlib import Path

import torch

from ..errors import UserError

AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
X86_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def pick_device(requested: str) -> str:
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


def autocast(device: str, precision: str):
    """A context manager that runs the forward pass in the chosen precision."""
    dtype = AUTOCAST_DTYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device, dtype=dtype)
