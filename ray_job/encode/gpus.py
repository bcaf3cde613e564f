"""What a GPU model can do, from the vendors' datasheets (dense fp16/bf16 tensor-core TFLOP/s,
no sparsity; memory in GiB of the common part). A lookup by name: Ray's `accelerator_type:X`
resource, or `torch.cuda.get_device_name()` ("NVIDIA H200", "NVIDIA A100-SXM4-80GB")."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuFacts:
    name: str
    peak_tflops: float
    memory_gib: float


# longest names first, so "A10G" is not taken for "A10" nor "L40S" for "L4"
GPUS = (GpuFacts("H200", 989.0, 141.0), GpuFacts("H100", 989.0, 80.0),
        GpuFacts("A100", 312.0, 80.0), GpuFacts("L40S", 362.0, 48.0),
        GpuFacts("A10G", 125.0, 24.0), GpuFacts("A10", 125.0, 24.0),
        GpuFacts("V100", 125.0, 16.0), GpuFacts("L4", 121.0, 24.0),
        GpuFacts("T4", 65.0, 16.0))


def gpu_facts(name: str | None) -> GpuFacts | None:
    if not name:
        return None
    upper = name.upper()
    return next((g for g in GPUS if g.name in upper), None)
