"""ray_job: embed papers (title + abstract) with transformer models on Ray, publish the vectors.

In layers, bottom first; a module imports only its own layer and those below it, and no
modules import each other around a loop (tests/driver/test_import_graph.py reads the imports):

    errors, redact, hooks    plain rules: one-line errors, credentials out, the two test hooks
    storage/   files on a local disk or in an object store; the one door (storage/files.py)
    config, config_checks, settings, template_syntax, sql_query   the validated job config;
               settings/ declares each setting once (flag, default, values, help)
    rundir/    the run directory behind RunDir: job.json (JobRecord), shards, rejects, lease
    read/      input files -> read units -> rows (key, id, text)          Ray read tasks
    encode/    rows -> token ids (CPU tasks) -> embeddings (replica pool)   Ray actors
      model/   what a model is (files, prompts, shape, FLOPs) and what it needs (precision,
               defaults, pool size); reads no replica module
    finalize/  shards -> verified embeddings.h5 (+ Parquet / DuckDB), report.json
    publish/   a finished run -> the Hugging Face Hub or any fsspec URL
    search/    nearest papers to a query or a paper: an ANN index in RUN/index/, or a scan
    map/, explore/   the 2-D map of a finished run, and the browser view of it
    estimate/  `ray-embed plan`: the corpus, a GPU's rate, the projected cost
    results/   a finished run read from Python (`open_run`): ids, lazy vectors, search
    session/   the Ray session of a run: connect or start Ray, quiet, auth hints
    throughput, driver_memory, pipeline, bench, api, cli   the driver: `pipeline` wires the
               stages for one run, `api` is its Python face, `cli` is ray-embed, `bench`
               measures this cluster

The Python face (docs/python.md), loaded on first use so that `import ray_job` imports
neither Ray, torch nor pyarrow:

    ray_job.embed(**settings)            the run `ray-embed run` makes -> a FinishedRun
    ray_job.open_run(PATH_OR_URL)        a finished run: ids, vectors, search, similar
    ray_job.embed_dataset(ds, model=...) a user's Ray Dataset with an embedding column added
    ray_job.JobConfig                    the validated settings
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> the module defining it, imported when the name is first asked for
_LAZY = {"embed": "ray_job.api", "job_config": "ray_job.api",
         "open_run": "ray_job.results.finished", "FinishedRun": "ray_job.results.finished",
         "embed_dataset": "ray_job.encode.dataset_step", "JobConfig": "ray_job.config"}

__all__ = [
    "FinishedRun",
    "JobConfig",
    "__version__",
    "embed",
    "embed_dataset",
    "job_config",
    "open_run",
]

def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'ray_job' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
