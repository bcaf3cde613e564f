"""ray_job: embed papers (title + abstract) with transformer models on Ray, publish the vectors.

The data flow, one subpackage per stage:

    read/      input files -> read units -> rows (key, id, text)          Ray read tasks
    encode/    rows -> token ids (CPU tasks) -> embeddings (replica pool)   Ray actors
    rundir/    the run directory (shards, rejects, reuse, job.json), behind RunDir
    finalize/  shards -> verified embeddings.h5 (+ Parquet / DuckDB), report.json
    publish/   a finished run -> the Hugging Face Hub or any fsspec URL
    search/    nearest papers to a query or a paper: an ANN index in RUN/index/, or a scan
    session/   the Ray session of a run: connect or start Ray, quiet, auth hints

Entry points: `cli` (ray-embed), `config` (+ `config_checks`: the validated job config),
`pipeline` (wires the stages for one run), `bench` (throughput on this cluster). Beside them:
`errors`, `redact` (credentials out of records and messages), `faults` (test-only fault
injection, from the environment).
"""

__version__ = "0.1.0"
