"""ray_job: embed papers (title + abstract) with transformer models on Ray, publish the vectors.

In layers, bottom first; a module imports only its own layer and those below it, and no
modules import each other around a loop (tests/test_import_graph.py reads the imports):

    errors, redact, hooks    plain rules: one-line errors, credentials out, the two test hooks
    storage/   files on a local disk or in an object store; the one door (storage/files.py)
    config, config_checks, template_syntax, sql_query   the validated job config
    rundir/    the run directory behind RunDir: job.json (JobRecord), shards, rejects, lease
    read/      input files -> read units -> rows (key, id, text)          Ray read tasks
    encode/    rows -> token ids (CPU tasks) -> embeddings (replica pool)   Ray actors
    finalize/  shards -> verified embeddings.h5 (+ Parquet / DuckDB), report.json
    publish/   a finished run -> the Hugging Face Hub or any fsspec URL
    search/    nearest papers to a query or a paper: an ANN index in RUN/index/, or a scan
    session/   the Ray session of a run: connect or start Ray, quiet, auth hints
    throughput, driver_memory, pipeline, bench, cli   the driver: `pipeline` wires the stages
               for one run, `cli` is ray-embed, `bench` measures this cluster
"""

__version__ = "0.1.0"
