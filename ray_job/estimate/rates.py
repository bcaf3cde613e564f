"""Docs/s of one GPU for a model, and where the number comes from.

Three sources, best first:
* the GPU check's results (`benchmarks/gpu_check.py`), as shipped with the package
  (`gpu_rates.json` here, package data) or from a file the user names: the MFU measured for
  the nearest model shape at the precision the run will use. Docs/s follows from that MFU, the
  GPU's datasheet peak and this corpus's tokens per doc (the same shape: "measured MFU"; another
  shape: "projected"; another GPU type: scaled by the datasheets' peaks).
* without results: the model's FLOPs per doc at the assumed MFU of `encode/model/defaults.py`.
* on CPUs (`--gpus 0`): a short measured run of the replica in this process.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..encode.model.defaults import MFU, gpu_numbers
from ..encode.model.shape import ModelShape

# the GPU check's results as released with the package (benchmarks/README.md says how the
# file is updated); an empty record of rows means no GPU has been measured: rates are estimates
PACKAGED_RATES = "gpu_rates.json"


@dataclass(frozen=True)
class Rate:
    docs_per_s: float
    how: str                  # measured MFU | projected | estimated | measured on this CPU
    detail: str


def packaged_rates_path() -> Path:
    """The shipped results, wherever the package is installed (never the source checkout)."""
    return Path(str(resources.files(__package__) / PACKAGED_RATES))


def load_results(path: Path | None) -> dict | None:
    """The named results file, else the shipped one; None where it is missing or a dry run."""
    path = path or packaged_rates_path()
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return None if data.get("dry_run") else data


def gpu_rate(shape: ModelShape, max_len: int, tokens_per_doc: float, padding: float,
             gpu_type: str, precision: str, results: dict | None) -> Rate:
    peak, _ = gpu_numbers(gpu_type)
    flops = shape.flops_per_doc(tokens_per_doc, padding)
    measured = nearest_measurement(shape, max_len, precision, results) if results else None
    if measured is None:
        return Rate(peak * 1e12 * MFU / flops, "estimated",
                    f"the model's FLOPs ({flops / 1e9:,.1f} GFLOP a doc at padding {padding:.2f})"
                    f" at an ASSUMED {MFU:.0%} of {gpu_type}'s {peak:g} TFLOP/s datasheet peak "
                    f"(no GPU results: run benchmarks/gpu_check.py on a GPU)")
    key, row, same = measured
    measured_peak, _ = gpu_numbers(results.get("device_name"))
    mfu = row["achieved_tflops"] / measured_peak
    how = "measured MFU" if same else "projected"
    where = results.get("device_name", "?")
    scaled = "" if gpu_numbers(gpu_type) == gpu_numbers(where) else \
        f", scaled to {gpu_type} by the datasheets' peaks"
    return Rate(peak * 1e12 * mfu / flops, how,
                f"MFU {mfu:.1%} measured for {key} ({precision}) on {where} by the GPU check"
                f"{'' if same else ' (another shape: nearest measured)'}{scaled}; "
                f"{flops / 1e9:,.1f} GFLOP a doc")


def nearest_measurement(shape: ModelShape, max_len: int, precision: str, results: dict):
    """(model key, its speed row, same shape?) of the measured model nearest in shape."""
    shapes = results.get("models", {})
    rows = {r["model"]: r for r in results.get("rows", [])
            if r.get("step") == "speed" and r.get("variant") == precision
            and r.get("achieved_tflops") and r["model"] in shapes}
    if not rows:
        return None

    def distance(key):
        s = shapes[key]
        return abs(math.log(s["hidden"] / shape.hidden)) + abs(math.log(s["layers"] / shape.layers))

    key = min(rows, key=distance)
    s = shapes[key]
    same = (s["layers"], s["hidden"], s["intermediate"], s["max_len"]) == (
        shape.layers, shape.hidden, shape.intermediate, max_len)
    return key, rows[key], same


def cpu_rate(cfg, info, token_lists: list[list[int]], seconds: float = 10.0) -> Rate:
    """The replica in this process on the sample's first docs, at the precision a CPU run
    takes: a short measured run of this machine's CPU."""
    import os

    from ..encode.encoder import Encoder
    from ..encode.model.precision import pick_precision
    from ..encode.tokenize import token_array
    from ..rundir.replica import ReplicaSpec

    precision = pick_precision(cfg.spec.precision, "cpu")
    encoder = Encoder(ReplicaSpec.of(cfg.spec, cfg.options, info.source, None, "cpu", precision),
                      threads=os.cpu_count())
    ids = token_array(token_lists)
    encoder.embed_token_lists(ids[:16])                   # warm
    done, started = 0, time.perf_counter()
    for start in range(0, len(ids), 64):
        encoder.embed_token_lists(ids[start:start + 64])
        done = min(len(ids), start + 64)
        if time.perf_counter() - started > seconds:
            break
    elapsed = time.perf_counter() - started
    return Rate(done / elapsed, "measured on this CPU",
                f"{done} docs in {elapsed:.1f} s, {precision}, {os.cpu_count()} cores of this "
                f"machine (in-process replica; the pipeline ran at 0.87 of it on 2 cores)")


def padding_efficiency(lengths: np.ndarray, budget: int, rows: int, call_rows: int) -> float:
    """Real over computed tokens when calls of `call_rows` docs are cut by the replica's rule."""
    from ..encode.batching import length_order, token_budget_batches

    real = padded = 0
    for start in range(0, len(lengths), call_rows):
        call = lengths[start:start + call_rows]
        ordered = call[length_order(call)]
        for part in token_budget_batches(ordered, budget, rows):
            padded += int(ordered[part.start]) * (part.stop - part.start)
        real += int(call.sum())
    return real / padded if padded else 1.0
