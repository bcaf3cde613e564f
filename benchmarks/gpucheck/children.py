"""Measurements in processes of their own, started as `gpu_check.py --child KIND --child-spec F`.

* `encode`: one replica (as a Ray actor would be: its own process and CUDA context) that loads
  its model, says it is ready, waits for the common start, encodes the token ids `passes` times
  and writes when it started and ended. N of them at once = N replicas sharing one GPU (what
  `--gpus-per-replica 1/N` gives on a cluster).
* `adapter`: the BERT-base + adapter measurements. `adapters` pins transformers 4.x, so this
  child runs under the transformers 4 stack carried as wheels (`--adapter-site`), while the
  parent runs the machine's own transformers.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa

GPU_CHECK = Path(__file__).resolve().parents[1] / "gpu_check.py"
ROOT = GPU_CHECK.parents[1]


def write_ids(path: Path, ids: pa.ListArray) -> Path:
    np.savez(path, offsets=ids.offsets.to_numpy(), values=ids.values.to_numpy())
    return path


def read_ids(path: Path) -> pa.ListArray:
    data = np.load(path)
    return pa.ListArray.from_arrays(pa.array(data["offsets"]), pa.array(data["values"]))


def spawn(kind: str, spec: dict, scratch: Path, site: Path | None = None,
          forbidden: tuple[str, ...] = ("ray", "adapters")) -> subprocess.Popen:
    """Start a child (refusing the imports the parent refuses; `adapters` is the adapter
    child's to import); its output goes to a log file beside its spec (printed on failure)."""
    name = f"{kind}-{uuid.uuid4().hex[:8]}"
    spec_path = scratch / f"{name}.json"
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site) if site else "", str(ROOT),
                                                    env.get("PYTHONPATH", "")) if p)
    log = open(scratch / f"{name}.log", "w")
    return subprocess.Popen([sys.executable, str(GPU_CHECK), "--child", kind, "--child-spec",
                             str(spec_path), "--forbid-imports", *sorted(forbidden)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)


def log_tail(process: subprocess.Popen, chars: int = 3000) -> str:
    path = Path(process.args[process.args.index("--child-spec") + 1]).with_suffix(".log")
    return path.read_text()[-chars:] if path.is_file() else ""


def wait_for(paths: list[Path], processes: list[subprocess.Popen], timeout: float) -> None:
    """Until every path exists; a child that exits first, or the timeout, is an error."""
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        dead = [p for p in processes if p.poll() not in (None, 0)]
        if dead:
            raise RuntimeError(f"a child exited with {dead[0].returncode}: {log_tail(dead[0])}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"children not ready in {timeout:.0f} s")
        time.sleep(0.01)


def encode_child(spec: dict) -> None:
    from ray_job.config import JobConfig
    from ray_job.encode.encoder import Encoder
    from ray_job.rundir.replica import ReplicaSpec

    cfg = JobConfig.of(**spec["settings"], precision=spec["precision"])
    replica = ReplicaSpec.of(cfg.spec, cfg.options, spec["settings"]["model"], None,
                             spec["device"], spec["precision"])
    encoder = Encoder(replica, threads=spec.get("threads"))
    ids = read_ids(Path(spec["ids"]))
    encoder.embed_token_lists(ids)                         # warm: kernels, allocator
    Path(spec["ready"]).touch()
    go = Path(spec["go"])
    deadline = time.monotonic() + 600
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    started = time.time()
    for _ in range(spec["passes"]):
        encoder.embed_token_lists(ids)
    ended = time.time()
    result = Path(spec["result"])           # the parent waits for the name: written whole
    tmp = result.with_name(result.name + ".tmp")
    tmp.write_text(json.dumps({"started": started, "ended": ended,
                               "docs": len(ids) * spec["passes"]}))
    os.replace(tmp, result)


def adapter_child(spec: dict) -> None:
    """Build BERT-base and a random seq_bn adapter with this process's transformers and
    `adapters`, then measure it as the parent measures the other models."""
    import transformers

    from ray_job.encode.model.shape import shape_of_folder

    from . import corpus, models, steps
    from .record import Results
    from .timing import Peaks

    scratch = Path(spec["scratch"])
    scratch.mkdir(parents=True, exist_ok=True)
    results = Results(Path(spec["result"]), {"transformers": transformers.__version__})
    key = "bert-base-adapter"
    specs = models.TINY if spec["dry_run"] else models.FULL
    check = steps.Check(results, spec["device"], spec["dry_run"], scratch, Path(spec["sample"]),
                        None, None, spec["min_s"], spec["docs"], specs=specs,
                        peaks=Peaks(*spec["peaks"]))
    base = models.bert_folder(specs[key], Path(spec["tokenizer_from"]), scratch, spec["device"])
    check.folders[key] = base
    check.adapters[key] = models.add_adapter(base, scratch / "adapter")
    records = corpus.load_records(check.sample)[: check.docs]
    texts = corpus.render_texts(records, "[SEP]")
    check.ids[key] = corpus.tokenize(str(base), specs[key].max_len, texts)
    check.shapes[key] = shape_of_folder(base)       # the adapter's ~1% of FLOPs left out
    steps.speed(check, key, spec["precisions"])
    for budget in spec["budgets"]:
        steps.measure_option(check, key, f"{budget:,} tokens", "token_budget",
                             max_batch_tokens=budget, max_batch_rows=max(256, budget // 64))
    with steps.attention_implementation("eager"):
        steps.measure_option(check, key, "eager attention", "attention")


CHILDREN = {"encode": encode_child, "adapter": adapter_child}


def child_main(kind: str, spec_path: str) -> int:
    CHILDREN[kind](json.loads(Path(spec_path).read_text()))
    return 0
