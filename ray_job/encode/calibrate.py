"""Precision and threads chosen by measurement, not by CPU flags.

A CPU flag says what the CPU can do, not what pays: bf16 autocast ran 2.6x fp32 on a Xeon with
AMX tiles and 0.7x on one with AVX512-BF16 alone (benchmarks/README.md). So `--precision auto`
times the replica itself before the run's record is written, in a replica's place (a Ray task
holding one replica's resources, on a node the replicas run on), on the corpus's own first
papers at their real lengths:

* each candidate precision (`candidates`): fp32, whose vectors are the reference, and the
  reduced ones the device runs natively; a precision whose vectors miss the fidelity bar
  (min cosine against fp32 on the same texts, `FIDELITY`) is never chosen, and one must beat
  fp32 by `MARGIN` to be (what is within the timing noise keeps the full precision);
* on CPUs, the chosen precision at one thread fewer: a thread left to the read and tokenize
  tasks pays where the replica gains little from it (`choose_threads`).

Each precision is timed twice and its better time kept. The choice is cached per machine kind
on the node (`cache_key`: the CPU model and flags or the GPU, torch's version, the model and
the options), so the next run of the same model on the same kind of machine starts without
timing; the run's record keeps it (`Choice`), and a resumed run keeps its record's precision
whatever this machine would choose.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass

FIDELITY = 0.999          # min cosine per row against fp32, the project's bar
MARGIN = 1.05             # a reduced precision must run this much faster than fp32
TRIAL_S = 0.5             # seconds one timing of one precision aims at
SAMPLE_DOCS = 128         # the most papers a timing takes
CACHE_VERSION = 1


@dataclass(frozen=True)
class Trial:
    precision: str
    threads: int
    docs_per_s: float
    min_cosine: float | None = None       # against fp32 at the same threads (fp32: None)


@dataclass(frozen=True)
class Choice:
    """What `auto` chose and the measurements it chose from (job.json, report.json)."""
    precision: str
    threads: int | None                   # torch threads per CPU replica (None: the device's)
    why: str
    trials: tuple[Trial, ...] = ()
    docs: int = 0                         # papers each timing took
    cached: bool = False

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "trials": [dataclasses.asdict(t) for t in self.trials]}

    @classmethod
    def from_dict(cls, data: dict) -> Choice:
        return cls(**{**data, "trials": tuple(Trial(**t) for t in data.get("trials", ()))})


def candidates(device: str, native_bf16: bool) -> tuple[str, ...]:
    """The precisions worth timing on `device`, fp32 (the reference) first."""
    if device == "cuda":
        return ("fp32", "fp16", "bf16", "fp16-weights", "bf16-weights")
    if device == "mps":
        return ("fp32", "fp16")
    return ("fp32", "bf16", "bf16-weights") if native_bf16 else ("fp32",)


def choose_precision(trials: list[Trial]) -> tuple[str, str]:
    """The fastest precision that reaches FIDELITY and beats fp32 by MARGIN (else fp32), and
    why, in one line."""
    by_name = {t.precision: t for t in trials}
    fp32 = by_name["fp32"]
    faithful = [t for t in trials if t.precision != "fp32" and (t.min_cosine or 0) >= FIDELITY]
    best = max(faithful, key=lambda t: t.docs_per_s, default=None)
    rates = ", ".join(f"{t.precision} {t.docs_per_s:,.1f}"
                      + (f" (min cosine {t.min_cosine:.5f})" if t.min_cosine is not None else "")
                      for t in trials)
    if best is not None and best.docs_per_s >= MARGIN * fp32.docs_per_s:
        return best.precision, (f"{best.precision}: the fastest that keeps the vectors "
                                f"({rates} docs/s)")
    return "fp32", (f"fp32: no reduced precision ran {MARGIN - 1:.0%} faster and as faithful "
                    f"({rates} docs/s)")


def choose_threads(rates: dict[int, float], cpus_per_replica: float,
                   data_cpu_s_per_doc: float) -> int:
    """The torch threads per replica that embed the most docs/s: each doc costs `threads /
    rate` CPU-seconds in its replica and `data_cpu_s_per_doc` in the read and tokenize tasks,
    and each replica's share of the node is `cpus_per_replica` CPUs, so `threads` threads give
    at most min(rate, cpus_per_replica / (threads / rate + data)) docs/s a replica."""
    def throughput(threads: int) -> float:
        rate = rates[threads]
        return min(rate, cpus_per_replica / (threads / rate + data_cpu_s_per_doc))
    return max(sorted(rates), key=throughput)


def thread_options(threads: int) -> tuple[int, ...]:
    """The thread counts timed on a CPU: the plan's, and one fewer where there is one."""
    return (threads, threads - 1) if threads > 1 else (threads,)


def machine_kind(device: str) -> dict:
    """What makes one machine time like another: the CPU's model and the flags that decide its
    arithmetic, or the GPU's name."""
    from .model.precision import cpu_flags

    if device == "cuda":
        import torch

        return {"gpu": torch.cuda.get_device_name(0)}
    info = _cpuinfo()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                  if line.startswith(("model name", "Model name", "CPU part"))), "unknown")
    wanted = {"amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2", "fma", "bf16", "asimd"}
    return {"cpu": model, "flags": sorted(cpu_flags(info) & wanted), "cpus": os.cpu_count()}


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return fh.read()
    except OSError:
        return ""


# what of a replica's settings makes it time differently (not where its files are: the
# model's identity, its weights digest or Hub commit, says what it is)
TIMED_SETTINGS = ("adapter", "backend", "pooling", "max_seq_length", "truncate_dim", "side",
                  "max_batch_tokens", "max_batch_rows", "compile")


def cache_key(replica, identity: dict, device: str, precisions, threads) -> str:
    import torch

    settings = {name: getattr(replica, name) for name in TIMED_SETTINGS}
    facts = {"version": CACHE_VERSION, "machine": machine_kind(device), "torch": torch.__version__,
             "device": device, "settings": settings, "identity": identity,
             "precisions": list(precisions), "threads": list(threads)}
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()


class Cache:
    """The node's choices, key -> Choice, in `folder` (default: this user's private folder,
    `storage.scratch`)."""

    def __init__(self, folder=None):
        from pathlib import Path

        from ..storage.scratch import private_dir

        self.path = Path(folder or private_dir("calibration")) / "choices.json"

    def get(self, key: str) -> Choice | None:
        try:
            found = json.loads(self.path.read_text()).get(key)
        except (OSError, ValueError):
            return None
        return dataclasses.replace(Choice.from_dict(found), cached=True) if found else None

    def put(self, key: str, choice: Choice) -> None:
        try:
            held = json.loads(self.path.read_text())
        except (OSError, ValueError):
            held = {}
        held[key] = choice.to_dict()
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(held, indent=1, sort_keys=True))
        os.replace(temp, self.path)


def calibrate(replica, ids, identity: dict, precisions: tuple[str, ...],
              threads: tuple[int, ...], cpus_per_replica: float,
              data_cpu_s_per_doc: float) -> Choice:
    """The choice for `replica` (a ReplicaSpec, device resolved) on this node: the cached one,
    or timed here on the token ids `ids` (a pyarrow ListArray of the corpus's first papers).
    Run in a replica's place: a Ray task holding one replica's resources."""
    device = replica.device
    cache, key = Cache(), cache_key(replica, identity, device, precisions, threads)
    cached = cache.get(key)
    if cached is not None:
        return cached
    choice = measure(replica, ids, precisions, threads, cpus_per_replica, data_cpu_s_per_doc)
    cache.put(key, choice)
    return choice


def measure(replica, ids, precisions: tuple[str, ...], threads: tuple[int, ...],
            cpus_per_replica: float, data_cpu_s_per_doc: float) -> Choice:
    """Time each precision at `threads[0]`, then the chosen one at the other thread counts;
    choose. One model is held at a time (a GPU holds one replica's worth)."""
    docs, rates, vectors = 0, {}, {}
    for precision in precisions:
        try:
            encoder = _encoder(replica, precision, threads[0])
            docs = docs or _docs_for(encoder, ids)
            rates[precision], vectors[precision] = _rate(encoder, ids.slice(0, docs))
            _free(encoder)
        except Exception:  # noqa: BLE001 - a precision the model cannot run is not chosen
            if precision == "fp32" or precision == precisions[0]:
                raise                          # the model itself fails: the run would too
            rates[precision], vectors[precision] = 0.0, None
    reference = vectors.get("fp32")
    trials = [Trial(p, threads[0], rates[p],
                    None if p == "fp32" or reference is None or vectors[p] is None else
                    _min_cosine(vectors[p], reference)) for p in precisions]
    if reference is None:                 # a precision asked for: only the threads are timed
        precision, why = precisions[0], f"{precisions[0]}: asked for"
    else:
        precision, why = choose_precision(trials)
    by_threads = {threads[0]: rates[precision]}
    for fewer in threads[1:]:
        encoder = _encoder(replica, precision, fewer)
        by_threads[fewer] = _rate(encoder, ids.slice(0, docs))[0]
        trials.append(Trial(precision, fewer, by_threads[fewer]))
        _free(encoder)
    chosen = None
    if replica.device == "cpu":
        chosen = choose_threads(by_threads, cpus_per_replica, data_cpu_s_per_doc)
        if len(by_threads) > 1:
            timed = ", ".join(f"{t}: {r:,.1f}" for t, r in by_threads.items())
            why += f"; {chosen} thread(s) a replica ({timed} docs/s)"
    return Choice(precision, chosen, why, tuple(trials), docs)


def _rate(encoder, ids) -> tuple[float, object]:
    """docs/s of the better of two timings (the first call after another's may pay for
    the switch), and the vectors."""
    seconds, vectors = min((_timed(encoder, ids) for _ in range(2)), key=lambda r: r[0])
    return len(ids) / seconds, vectors


def _free(encoder) -> None:
    import gc

    import torch

    del encoder
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _encoder(replica, precision: str, threads: int):
    from .encoder import Encoder

    return Encoder(dataclasses.replace(replica, precision=precision), threads=threads)


def _docs_for(encoder, ids) -> int:
    """Papers one timing takes: as many as run in about TRIAL_S at fp32 (16 at least), after a
    warm-up call."""
    encoder.embed_token_lists(ids.slice(0, min(8, len(ids))))
    probe = min(16, len(ids))
    seconds, _ = _timed(encoder, ids.slice(0, probe))
    per_doc = seconds / max(probe, 1)
    return int(min(len(ids), SAMPLE_DOCS, max(probe, TRIAL_S / max(per_doc, 1e-6))))


def _timed(encoder, ids) -> tuple[float, object]:
    started = time.perf_counter()
    vectors, _ = encoder.embed_token_lists(ids)
    return time.perf_counter() - started, vectors


def _min_cosine(a, b) -> float:
    import numpy as np

    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return float((a * b).sum(1).min())
