"""Every job setting, declared once (`SETTINGS`): the YAML keys, the flags of run / bench /
plan, the config's fields and checks, and docs/reference.md are made from this table.

The arguments of commands that are not settings are declared in commands.py."""
from __future__ import annotations

from .presets import PRESETS
from .setting import APPLIED, BENCH, OPTIONS, PLAN, RUN, SPEC, Setting

ALL = (RUN, BENCH, PLAN)
RUN_ONLY = (RUN,)
YAML_ONLY = {"flag": None, "commands": ()}     # a setting with no flag

PRECISIONS = ("auto", "fp32", "fp16", "bf16", "fp16-weights", "bf16-weights")
DEVICES = ("auto", "cpu", "cuda", "mps")

SPEC_SETTINGS = (
    Setting("inputs", tuple[str, ...], (), SPEC, metavar="PATH_OR_URL", flag="--input",
            commands=ALL, default_text="the built-in demo corpus",
            help="JSONL(.gz), Parquet or DuckDB file, a directory or a glob; local or s3://, "
                 "gs://, https://, hf://datasets/...; repeatable (default: the built-in demo "
                 "corpus)",
            doc="`.jsonl`/`.json`/`.ndjson` (plain, `.gz` or `.zst`: a compressed file is "
                "streamed by one task in bounded chunks; a `.json` file may hold one JSON "
                "array of records), `.parquet`, DuckDB, a directory of them or a glob (quote "
                "it); local, or `s3://`, `gs://`, `https://`, `hf://datasets/OWNER/NAME/FILE`, "
                "or a whole Hub dataset `hf://datasets/OWNER/NAME`; repeatable"),
    Setting("model", str | None, None, SPEC, metavar="NAME_OR_PATH", commands=ALL,
            default_text="the bundled all-MiniLM-L6-v2",
            help="sentence-transformers / transformers model: Hub name or local folder "
                 "(default: the bundled all-MiniLM-L6-v2)"),
    Setting("adapter", str | None, None, SPEC, metavar="NAME_OR_PATH", commands=ALL,
            help="load this `adapters` adapter on the model and activate it"),
    Setting("backend", str, "auto", SPEC, commands=ALL,
            choices=("auto", "sentence-transformers", "transformers"),
            help="load the model with sentence-transformers or plain transformers (auto: "
                 "sentence-transformers when the model has its config)"),
    Setting("pooling", str | None, None, SPEC, commands=ALL, choices=("cls", "mean", "lasttoken"),
            default_text="the model's own",
            help="a plain transformers model with this pooling (refused on a "
                 "sentence-transformers model, which pools with its own modules, unless "
                 "--backend transformers)"),
    Setting("normalize", bool | None, None, SPEC, default_text="the model's own",
            help="L2-normalise embeddings",
            doc="unit vectors (after any `--truncate-dim`); without it: what the model says "
                "(sentence-transformers), else not"),
    Setting("prompt", str | None, None, SPEC, metavar="TEXT", commands=ALL, hashed="when_set",
            default_text="the model's document prompt",
            help="put TEXT before every document ('' for none; default: the model's document "
                 "prompt)"),
    Setting("prompt_name", str | None, None, SPEC, metavar="NAME", commands=ALL,
            hashed="when_set", help="the model's prompt of this name before every document"),
    Setting("query_prompt", str | None, None, SPEC, metavar="TEXT", hashed="never",
            default_text="the model's query prompt",
            help="put TEXT before a search query ('' for none; default: the model's query "
                 "prompt)",
            doc="what `search` puts before a query (recorded in `job.json`; `search` takes "
                "the same flag); not hashed: it changes no stored vector"),
    Setting("query_prompt_name", str | None, None, SPEC, metavar="NAME", hashed="never",
            help="the model's prompt of this name before a search query"),
    Setting("truncate_dim", int | None, None, SPEC, metavar="D", positive=True, commands=ALL,
            hashed="when_set", default_text="the model's own truncate_dim",
            help="vectors of the first D dims (Matryoshka models; default: the model's own "
                 "truncate_dim)",
            doc="vectors of the first D dims (Matryoshka models), cut after the model's "
                "Normalize, so not unit length unless `--normalize`; refused above the "
                "model's dimension, before anything runs"),
    Setting("text", str, "{title}{sep}{abstract}", SPEC, metavar="TEMPLATE", commands=ALL,
            help="text template over record fields; {sep} = the tokenizer's separator "
                 "(default: '{title}{sep}{abstract}')",
            doc="template over record fields; `{sep}` is the tokenizer's separator token, a "
                "line break for a model without one; plain `{field}`s only"),
    Setting("id_field", str, "id", SPEC, metavar="FIELD", commands=ALL,
            help="record field with the id (default: id)",
            doc="field holding the paper id: a string (kept exactly) or an integer"),
    Setting("table", str | None, None, SPEC, metavar="NAME", commands=ALL,
            help="DuckDB input: the table to read"),
    Setting("query", str | None, None, SPEC, metavar="SQL", commands=ALL,
            help="DuckDB input: read the rows of this query",
            doc="DuckDB input: read the rows of this query, one deterministic `SELECT` (no "
                "sampling, `LIMIT`/`OFFSET`, random or clock functions)"),
    Setting("max_seq_length", int | None, None, SPEC, metavar="N", positive=True, commands=ALL,
            default_text="the model's own", help="tokens kept of each text"),
    Setting("precision", str, "auto", SPEC, choices=PRECISIONS, commands=ALL,
            help="fp16/bf16: fp32 weights under autocast; *-weights: half weights; auto: "
                 "timed when the run starts",
            doc="`fp16`/`bf16`: fp32 weights, forward pass under autocast; `*-weights`: the "
                "weights themselves in half, under autocast too; `auto`: the fastest precision "
                "the device runs natively whose vectors keep min cosine >= 0.999 against fp32, "
                "timed when the run starts; what ran is recorded per shard"),
    Setting("clean_whitespace", bool, True, SPEC, **YAML_ONLY,
            help="collapse runs of whitespace in the text"),
    Setting("on_missing_field", str, "reject", SPEC, choices=("reject", "empty"), commands=ALL,
            help="a template field that is missing: reject the row, or use ''"),
    Setting("trust_remote_code", bool, False, SPEC, commands=ALL,
            help="allow a model's own Python code from the Hub"),
)

OPTION_SETTINGS = (
    Setting("output", str, "out", OPTIONS, metavar="DIR_OR_URL", commands=RUN_ONLY,
            help="run directory, local or in object storage (s3://bucket/run: workers write "
                 "shards there; default: ./out)"),
    Setting("url_template", str | None, None, OPTIONS, metavar="T",
            help="e.g. 'https://arxiv.org/pdf/{id}.pdf', or 'arxiv'",
            doc="adds a `urls` dataset, e.g. `https://arxiv.org/pdf/{id}.pdf`; `arxiv` is that "
                "preset; `{id}` is its only field"),
    Setting("limit", int | None, None, OPTIONS, metavar="N", positive=True, commands=RUN_ONLY,
            default_text="all", help="embed only the first N records"),
    Setting("previous", str | None, None, OPTIONS, metavar="OLD_DIR_OR_H5",
            help="reuse the embeddings of unchanged papers (same id and text) from an earlier "
                 "run; encode only new/changed"),
    Setting("max_batch_tokens", int | None, None, OPTIONS, metavar="N", positive=True,
            commands=ALL, default_text="from the model and the node (16384 on CPUs)",
            help="token budget of one forward pass"),
    Setting("max_batch_rows", int, 256, OPTIONS, positive=True, **YAML_ONLY,
            help="rows of one forward pass at most"),
    Setting("shard_rows", int, 512, OPTIONS, metavar="N", positive=True,
            help="rows per encoder call (a shard file holds at least this many rows, in whole "
                 "read units)"),
    Setting("device", str, "auto", OPTIONS, choices=DEVICES,
            help="where the replicas run (auto: CUDA, else MPS, else the CPU)"),
    Setting("replicas", int | None, None, OPTIONS, metavar="N", positive=True,
            default_text="from the cluster's resources", help="encoder actors"),
    Setting("gpus_per_replica", float | None, None, OPTIONS, positive=True, **YAML_ONLY,
            default_text="from the model", help="GPUs of one encoder actor"),
    Setting("cpus_per_replica", float, 1.0, OPTIONS, positive=True, **YAML_ONLY,
            help="CPUs of one encoder actor"),
    Setting("threads_per_replica", int | None, None, OPTIONS, metavar="N", positive=True,
            flag="--threads", default_text="timed when the run starts",
            help="torch threads per CPU replica"),
    Setting("block_bytes", int | None, None, OPTIONS, metavar="N", positive=True,
            at_least=4 * 1024, at_least_why="4 KiB; a read unit of a few records",
            default_text="from the input size",
            help="bytes of JSONL per read unit (default: from the input size); smaller = finer "
                 "resume"),
    Setting("compile", bool, False, OPTIONS,
            help="torch.compile the forward pass (worth it on GPUs, long runs)"),
    Setting("demo_docs", int, 2000, OPTIONS, positive=True, **YAML_ONLY,
            help="rows of the built-in demo corpus"),
    Setting("address", str | None, None, OPTIONS, metavar="ADDR", default_text="a local Ray",
            help="Ray address ('auto' on a cluster); default: start a local Ray"),
    Setting("fresh", bool, False, OPTIONS, commands=RUN_ONLY,
            help="discard an existing run in --output and start over"),
    Setting("verbose", bool, False, OPTIONS, help="show Ray's own logs and progress bars"),
    Setting("storage_dtype", str, "float32", OPTIONS, flag="--dtype",
            choices=("float32", "float16"), help="embeddings.h5 storage dtype (default float32)"),
    Setting("compression", str | None, None, OPTIONS, choices=("gzip", "lzf"),
            help="embeddings.h5 compression (default none)"),
    Setting("exports", tuple[str, ...], (), OPTIONS, flag="--export",
            choices=("parquet", "duckdb", "int8", "binary", "lance"),
            help="also write OUT/parquet/, OUT/embeddings.duckdb, OUT/embeddings-int8.h5, "
                 "OUT/embeddings-binary.h5 or OUT/lance/ (a LanceDB table); repeatable"),
    Setting("map", bool, False, OPTIONS, commands=RUN_ONLY,
            help="after finalizing, lay the papers out in 2-D (ray-embed map)"),
    Setting("upload", str | None, None, OPTIONS, metavar="DEST",
            help="publish the result when the run is done: hf://datasets/OWNER/NAME[/path] "
                 "(Hugging Face Hub) or an fsspec URL (s3://, gs://, file://)"),
    Setting("upload_every", int | None, None, OPTIONS, metavar="N", positive=True,
            help="with --upload: also publish every N new shards during the run"),
    Setting("strict", bool, False, OPTIONS,
            help="fail (exit code 1) when any row is rejected"),
    Setting("index", bool, False, OPTIONS, commands=RUN_ONLY,
            help="after finalizing, build the nearest-neighbour index (ray-embed index)"),
    Setting("drop_duplicates", bool, False, OPTIONS, commands=RUN_ONLY,
            help="after embeddings.h5, find near-duplicate papers (ray-embed dedup, at "
                 "--dedup-threshold) and leave all but the earliest of each group out of the "
                 "exports (embeddings.h5 keeps every row); needs --export"),
    Setting("dedup_threshold", float, 0.95, OPTIONS, metavar="T", commands=RUN_ONLY,
            help="with --drop-duplicates: the cosine at or above which two papers are "
                 "duplicates, in (0, 1] (default 0.95)"),
    Setting("label_field", str | None, None, OPTIONS, metavar="FIELD", commands=RUN_ONLY,
            default_text="categories (arXiv) or fieldsOfStudy (Semantic Scholar)",
            help="the input field whose value labels a paper, for the quality report's "
                 "label agreement and the map (default: arXiv categories or Semantic "
                 "Scholar fields of study, when the input has them)"),
)

APPLIED_SETTINGS = (
    Setting("preset", str | None, None, APPLIED, commands=ALL, choices=tuple(sorted(PRESETS)),
            help="specter2 = allenai/specter2_base + the allenai/specter2 adapter, CLS "
                 "pooling, title[SEP]abstract, 512 tokens; e5, bge, nomic, embeddinggemma = "
                 "the family's model with the prompts and template its card asks for",
            doc="a named bundle of settings; a setting given (YAML or flag) wins over the "
                "preset's"),
)

SETTINGS = APPLIED_SETTINGS + SPEC_SETTINGS + OPTION_SETTINGS    # the order of --help
