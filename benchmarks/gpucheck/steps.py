"""The in-process measurements of the GPU check: correctness and speed of the replica's encoder
for each model and precision, the baseline (sentence-transformers' fp16 `encode`), and the
options only a GPU can decide (token budget, feeder, attention kernel, torch.compile).

Every measurement builds the replica exactly as a Ray actor would (`Encoder(ReplicaSpec.of(
cfg.spec, cfg.options, ...))`) and times `embed_token_lists` on the sample's token ids.
"""
from __future__ import annotations

import contextlib
import gc
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ray_job.config import JobConfig
from ray_job.encode.encoder import Encoder
from ray_job.encode.feed import HostFeeder
from ray_job.encode.model.shape import shape_of_folder
from ray_job.rundir.replica import ReplicaSpec

from . import corpus, models
from .record import Results, Skip
from .timing import Peaks, matmul_tflops, min_cosine, time_encoder

PRECISIONS = ("fp32", "fp16", "fp16-weights", "bf16", "bf16-weights")
SPEED_MODELS = ("minilm", "bert-base", "roberta-large", "qwen3-0.6b")
# what `{sep}` becomes for each architecture (encode/model_info.separator)
SEPARATORS = {"roberta": "</s>", "qwen3": "\n"}
DATASHEET_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}


@dataclass
class Check:
    """What the steps share: where they run, the models built, their token ids, references.
    `rates[(model, variant)]`: docs/s of each measurement (the later steps size from them)."""
    results: Results
    device: str
    dry_run: bool
    scratch: Path
    sample: Path
    carry: Path | None
    adapter_site: Path | None
    min_s: float
    docs: int | None
    specs: dict = field(default_factory=dict)
    folders: dict = field(default_factory=dict)
    adapters: dict = field(default_factory=dict)       # model -> adapter folder
    texts: dict = field(default_factory=dict)
    ids: dict = field(default_factory=dict)
    shapes: dict = field(default_factory=dict)
    reference: dict = field(default_factory=dict)      # model -> fp32 vectors on the device
    rates: dict = field(default_factory=dict)          # (model, variant) -> docs/s
    peaks: Peaks = Peaks(None, None)

    @property
    def half(self) -> str:
        """The precision the option measurements run in: fp16 on CUDA; fp32 in a dry run on
        a CPU (where fp16 is emulated, and bf16 too on CPUs without AMX / AVX512-BF16)."""
        return "fp16" if self.device == "cuda" else "fp32"

    @property
    def threads(self) -> int | None:
        """torch threads of a CPU replica: one in a dry run (two threads on two cores shared
        with other work ran a tiny model 20x slower than one: OpenMP waits)."""
        return 1 if self.dry_run else None

    def encoder(self, key: str, precision: str, device: str | None = None, threads=None,
                **options) -> Encoder:
        settings = models.job_settings(self.specs[key], self.folders[key], self.adapters.get(key))
        cfg = JobConfig.of(**settings, precision=precision, **options)
        replica = ReplicaSpec.of(cfg.spec, cfg.options, settings["model"], None,
                                 device or self.device, precision)
        return Encoder(replica, threads=threads or self.threads)

    def measure(self, step: str, key: str, variant: str, encoder: Encoder, ids=None,
                reference: np.ndarray | None = None, **extra) -> dict:
        ids = self.ids[key] if ids is None else ids
        numbers, vectors = time_encoder(encoder, ids, self.shapes[key], self.peaks, self.min_s)
        ref = self.reference.get(key) if reference is None else reference
        cos = min_cosine(vectors, ref[: len(vectors)]) if ref is not None else None
        self.rates[(key, variant)] = numbers["docs_per_s"]
        self.results.row(step, model=key, variant=variant, min_cos=cos, **numbers, **extra)
        return {**numbers, "vectors": vectors}


def free(*objects) -> None:
    del objects
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def environment(check: Check) -> None:
    import transformers

    name = torch.cuda.get_device_name(0) if check.device == "cuda" else platform.processor()
    datasheet = next((v for k, v in DATASHEET_TFLOPS.items() if k in name), None)
    fp16 = matmul_tflops(check.device, torch.float16)
    bf16 = matmul_tflops(check.device, torch.bfloat16)
    check.peaks = Peaks(datasheet, fp16)
    info = {"device_name": name, "torch": torch.__version__, "cuda": torch.version.cuda,
            "transformers": transformers.__version__, "python": platform.python_version(),
            "cpus": os.cpu_count(), "datasheet_tflops_fp16": datasheet,
            "measured_matmul_tflops": {"fp16": fp16, "bf16": bf16},
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32}
    if check.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    multiprocessors=props.multi_processor_count)
    with contextlib.suppress(ImportError):
        import sentence_transformers
        info["sentence_transformers"] = sentence_transformers.__version__
    for key, value in info.items():
        check.results.note(key, value)


def prepare(check: Check) -> None:
    """Model folders, the sample's texts rendered with each tokenizer's separator, token ids."""
    records = corpus.load_records(check.sample)[: check.docs]
    build_on = check.device
    if check.dry_run:
        minilm = models.tiny_minilm_folder(check.specs["minilm"],
                                           models.minilm_folder(None, check.scratch),
                                           check.scratch)
    else:
        minilm = models.minilm_folder(check.carry, check.scratch)
    check.folders["minilm"] = minilm
    plain = corpus.render_texts(records, "[SEP]")
    check.folders["bert-base"] = models.bert_folder(check.specs["bert-base"], minilm,
                                                    check.scratch, build_on)
    check.folders["roberta-large"] = models.roberta_folder(check.specs["roberta-large"],
                                                           corpus.render_texts(records, "</s>"),
                                                           check.scratch, build_on)
    check.folders["qwen3-0.6b"] = models.qwen3_folder(check.specs["qwen3-0.6b"],
                                                      corpus.render_texts(records, "\n"),
                                                      check.scratch, build_on)
    for key in SPEED_MODELS:
        spec, folder = check.specs[key], check.folders[key]
        sep = SEPARATORS.get(spec.arch, "[SEP]")
        check.texts[key] = plain if sep == "[SEP]" else corpus.render_texts(records, sep)
        check.ids[key] = corpus.tokenize(str(folder), spec.max_len, check.texts[key])
        check.shapes[key] = shape_of_folder(folder, params=0)
        mean = float(corpus.lengths(check.ids[key]).mean())
        if mean < 16:               # abstracts run ~200 tokens: a broken tokenizer, not data
            raise RuntimeError(f"{key}: {mean:.1f} tokens a doc; its tokenizer is broken")
    check.results.note("models", {key: {"layers": s.layers, "hidden": s.hidden,
                                        "intermediate": s.intermediate, "heads": s.heads,
                                        "max_len": s.max_len, "label": s.label}
                                  for key, s in check.specs.items()})
    check.results.note("corpus", {
        key: {"docs": len(ids), "tokens": int(corpus.lengths(ids).sum()),
              "max_len": check.specs[key].max_len,
              "mean_tokens": round(float(corpus.lengths(ids).mean()), 1)}
        for key, ids in check.ids.items()})


def cpu_vs_gpu(check: Check) -> None:
    """The replica's fp32 vectors on the GPU against the same code on this machine's CPU."""
    ids = check.ids["minilm"][:256]
    cpu = check.encoder("minilm", "fp32", device="cpu", threads=check.threads or os.cpu_count())
    cpu_vectors, _ = cpu.embed_token_lists(ids)
    free(cpu)
    gpu = check.encoder("minilm", "fp32")
    check.measure("cpu_vs_gpu", "minilm", "fp32 on the device vs on the CPU", gpu, ids,
                  reference=cpu_vectors)
    free(gpu)


def speed(check: Check, key: str, precisions=PRECISIONS) -> None:
    """Each precision of one model; fp32 first, the reference of the others' min cosine."""
    for precision in precisions:
        started = time.perf_counter()
        encoder = check.encoder(key, precision)
        load_s = round(time.perf_counter() - started, 2)
        out = check.measure("speed", key, precision, encoder, load_s=load_s)
        if precision == "fp32":
            check.reference[key] = out["vectors"]
        free(encoder)


def st_fp16(check: Check) -> None:
    """sentence-transformers' own fp16 `encode` (batch 64, its length sort), tokenizing
    included, in this process: the baseline users run. For the BERT-base folder it wraps the
    model with mean pooling (it has no CLS setting there), so no cosine is given."""
    from sentence_transformers import SentenceTransformer

    for key in SPEED_MODELS:
        model = SentenceTransformer(str(check.folders[key]), device=check.device)
        model.max_seq_length = check.specs[key].max_len
        model.half()
        texts = check.texts[key]
        model.encode(texts[:64], batch_size=64)
        passes, seconds = 0, 0.0
        started = time.perf_counter()
        while passes == 0 or seconds < check.min_s:
            vectors = model.encode(texts, batch_size=64, convert_to_numpy=True)
            passes += 1
            seconds = time.perf_counter() - started
        docs = len(texts) * passes / seconds
        tokens = int(corpus.lengths(check.ids[key]).sum()) * passes / seconds
        ref = check.reference.get(key) if key != "bert-base" else None
        check.rates[(key, "st-fp16")] = round(docs, 1)
        check.results.row("st_fp16", model=key, variant="sentence-transformers fp16 encode",
                          docs_per_s=round(docs, 1), tokens_per_s=round(tokens),
                          min_cos=min_cosine(vectors.astype(np.float32), ref) if ref is not None
                          else None, passes=passes, seconds=round(seconds, 3))
        free(model)


def measure_option(check: Check, key: str, variant: str, step: str = "option",
                   **options) -> None:
    """One option at the check's half precision; `variant` names it after the precision."""
    encoder = check.encoder(key, check.half, **options)
    check.measure(step, key, f"{check.half}, {variant}", encoder)
    free(encoder)


TOKEN_BUDGETS = {"minilm": (4096, 16384, 65536, 262144), "bert-base": (16384, 65536, 262144),
                 "roberta-large": (16384, 65536), "qwen3-0.6b": (16384, 65536)}


def token_budgets(check: Check) -> None:
    """fp16 at other token budgets (rows per micro-batch raised with them)."""
    for key, values in TOKEN_BUDGETS.items():
        for budget in values:
            measure_option(check, key, f"{budget:,} tokens", "token_budget",
                           max_batch_tokens=budget, max_batch_rows=max(256, budget // 64))


def feeder(check: Check) -> None:
    """The pinned, double-buffered feeder (the replica's on CUDA) against plain host tensors."""
    for key in ("minilm", "bert-base"):
        for name in ("pinned", "plain"):
            encoder = check.encoder(key, check.half)
            if name == "plain":
                encoder.feeder = HostFeeder(encoder.torch_device, encoder.pad_id)
            check.measure("feeder", key, f"{check.half}, {name} feeder", encoder)
            free(encoder)


@contextlib.contextmanager
def attention_implementation(name: str):
    """Load models with `attn_implementation=name` (the replica leaves it to transformers:
    SDPA where the model supports it): patches `AutoModel` and, where it is imported,
    `adapters.AutoAdapterModel`, the two classes the replica loads encoders with."""
    import sys

    from transformers import AutoModel

    classes = [AutoModel] + ([sys.modules["adapters"].AutoAdapterModel]
                             if "adapters" in sys.modules else [])
    saved = [(cls, cls.__dict__.get("from_pretrained")) for cls in classes]
    for cls in classes:
        cls.from_pretrained = _with_attention(cls.from_pretrained, name)
    try:
        yield
    finally:
        for cls, own in saved:
            if own is None:
                del cls.from_pretrained
            else:
                cls.from_pretrained = own


def _with_attention(load, name: str):
    def patched(*args, **kwargs):
        return load(*args, attn_implementation=name, **kwargs)
    return patched


def attention(check: Check) -> None:
    for key in SPEED_MODELS:
        for name in ("sdpa", "eager"):
            with attention_implementation(name):
                encoder = check.encoder(key, check.half)
            check.measure("attention", key, f"{check.half}, {name} attention", encoder)
            free(encoder)


def compiled(check: Check) -> None:
    """torch.compile of the forward pass (`--compile`: dynamic shapes); its first pass, the
    compilation, is in first_pass_s."""
    if check.device != "cuda":
        raise Skip("torch.compile is measured on CUDA only (minutes of compiling on a CPU)")
    for key in ("minilm", "bert-base"):
        measure_option(check, key, "torch.compile", "compile", compile=True)
