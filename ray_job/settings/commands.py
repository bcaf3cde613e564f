"""Every command of `ray-embed` (`COMMANDS`, in the order of `ray-embed --help`) and every
argument of a command that is not a job setting (`COMMAND_OPTIONS`), declared once: the
argparse subparsers and the commands' sections of docs/reference.md are made from them.

A command's arguments are its options in this table's order, with the settings' flags right
after `SETTINGS_FILE`; so positional arguments are taken in this order too.

Also the defaults and choices of commands' options that other modules share (`MAP_SAMPLE`,
`INDEX_VECTORS`, `MAP_COLOURS`), so that `--help` needs none of those modules."""
from __future__ import annotations

from .option import Command, CommandOption

INDEX_VECTORS = ("float32", "int8", "binary")    # what `ray-embed index --vectors` indexes
DEDUP_THRESHOLD = 0.95        # `ray-embed dedup --threshold`, and --dedup-threshold
MAP_SAMPLE = 50_000           # rows UMAP is fitted on (the rest are placed near them)
MAP_COLOURS = ("label", "agreement", "duplicates")   # what `ray-embed map --color` colours by

COMMANDS = (
    Command("run", "embed a corpus into OUT/embeddings.h5"),
    Command("bench", "measure docs/s on this cluster and project a full run"),
    Command("plan", "before the spend: corpus, tokens, projected wall time, GPU-hours, cost "
                    "and CPUs per GPU"),
    Command("upload", "publish a finished run to the Hugging Face Hub or an fsspec URL"),
    Command("search", "nearest papers to a query (through the run's index when it is current, "
                      "else an exact scan)"),
    Command("similar", "papers nearest to a paper of the run (itself left out)"),
    Command("index", "build the run's nearest-neighbour index in DIR/index/ (nothing to do when "
                     "it is current)"),
    Command("map", "lay the run's papers out in 2-D (UMAP) in DIR/map/, with a picture (nothing "
                   "to do when it is current)"),
    Command("dedup", "find near-duplicate papers of a finished run, in DIR/dedup/ (the earliest "
                     "in input order of each group is kept; nothing to do when it is current)"),
    Command("explore", "open the run in Embedding Atlas (map, text search, neighbours, "
                       "filters) on 127.0.0.1"),
    Command("status", "progress of a run directory"),
    Command("report", "what a finished run did and what its vectors are worth (quality: "
                      "norms, spread, texts cut, label agreement, the verdict)"),
    Command("compare", "two runs of one corpus side by side: label agreement, neighbourhood "
                       "overlap, where they disagree, speed and size"),
    Command("finalize", "merge the shards of a run directory again"),
)

ON_A_RUN = ("upload", "search", "similar", "index", "map", "dedup", "status", "report",
            "finalize")
HITS = ("search", "similar")

SETTINGS_FILE = CommandOption("--config", ("run", "bench", "plan"), metavar="job.yaml",
                              help="YAML file with the same settings")

COMMAND_OPTIONS = (
    CommandOption("directory", ON_A_RUN, metavar="DIR", doc="the run directory"),
    CommandOption("directory", ("explore",), metavar="DIR_OR_URL",
                  doc="the run directory, local or in object storage"),
    SETTINGS_FILE,
    # bench
    CommandOption("--docs", ("bench",), type=int, default=2000,
                  help="rows to embed (default 2000)"),
    CommandOption("--corpus-size", ("bench",), type=int, default=2_700_000,
                  default_text="2,700,000 (the arXiv snapshot)",
                  help="papers in the full run to project (default: the arXiv snapshot)"),
    CommandOption("--gpu-docs-per-s", ("bench",), type=float, metavar="N", positive=True,
                  help="on a CPU-only cluster: an assumed docs/s of one GPU replica, to say how "
                       "many CPU cores it needs (measured instead on CUDA)"),
    # plan
    CommandOption("--gpus", ("plan",), type=int, required=True,
                  help="GPUs of the run (0: this CPU)"),
    CommandOption("--gpu-type", ("plan",), default="H100",
                  help="H200, H100, A100, L40S, L4, ..."),
    CommandOption("--price-per-gpu-hour", ("plan",), type=float, metavar="P",
                  doc="price of one GPU-hour: the plan then says the run's cost"),
    CommandOption("--cpus-per-gpu", ("plan",), type=float, metavar="N",
                  help="CPUs a node has per GPU (the data path may then limit the rate)"),
    CommandOption("--docs", ("plan",), type=int, positive=True, default_text="counted",
                  help="corpus rows, when known"),
    CommandOption("--sample-docs", ("plan",), type=int, default=1000, positive=True,
                  help="rows read and tokenized to measure tokens per doc (default 1000)"),
    CommandOption("--gpu-results", ("plan",), metavar="JSON",
                  default_text="those shipped with ray_job",
                  help="the GPU check's results (default: those shipped with ray_job)"),
    CommandOption("--json", ("plan",), type=bool, help="print the plan as JSON"),
    # upload
    CommandOption("destination", ("upload",), metavar="DEST",
                  help="hf://datasets/OWNER/NAME[/path], s3://bucket/path, gs://..., file://..."),
    # search, similar
    CommandOption("query", ("search",), doc="the query text"),
    CommandOption("--query-prompt", ("search",), metavar="TEXT",
                  default_text="the run's query prompt",
                  help="put TEXT before the query ('' for none; default: the run's query "
                       "prompt, job.json's model.query_prompt)"),
    CommandOption("--query-prompt-name", ("search",), metavar="NAME",
                  help="the model's prompt of this name before the query"),
    CommandOption("paper_id", ("similar",), metavar="PAPER_ID", doc="the id of a paper of the run"),
    CommandOption("-k", HITS, type=int, default=10, positive=True,
                  help="how many hits (default 10)"),
    CommandOption("--json", HITS, type=bool, help="print the hits as JSON"),
    # index, map
    CommandOption("--force", ("index", "map"), type=bool, help="rebuild even when current"),
    CommandOption("--vectors", ("index",), choices=INDEX_VECTORS, default=INDEX_VECTORS[0],
                  help="index the float32 vectors (default) or their compact int8 / binary "
                       "codes (candidates rescored exactly against float32)"),
    CommandOption("--truncate-dim", ("index",), type=int, metavar="D",
                  help="with --vectors int8/binary: codes of the first D dims only"),
    CommandOption("--sample", ("map",), type=int, default=MAP_SAMPLE, metavar="N",
                  help=f"rows UMAP is fitted on; the others are placed near them "
                       f"(default {MAP_SAMPLE:,})"),
    CommandOption("--color", ("map",), choices=MAP_COLOURS, default=MAP_COLOURS[0],
                  help="colour the map by the papers' labels (default: map/map.png), by each "
                       "paper's k-NN label agreement (the share of its 10 nearest neighbours "
                       "with its label: map/map-agreement.png), or by near-duplicate group "
                       "(after `ray-embed dedup`: map/map-duplicates.png)"),
    # dedup
    CommandOption("--threshold", ("dedup",), type=float, default=DEDUP_THRESHOLD, metavar="T",
                  help=f"papers whose cosine is at least T (in (0, 1]) are duplicates "
                       f"(default {DEDUP_THRESHOLD}); of each group the paper earliest in input "
                       f"order is kept"),
    CommandOption("--force", ("dedup",), type=bool, help="make it again even when current"),
    # explore
    CommandOption("--port", ("explore",), type=int, default=5055, help="default 5055",
                  doc="the port Embedding Atlas serves on"),
    CommandOption("--no-browser", ("explore",), type=bool,
                  help="do not open a web browser, only serve"),
    # report, compare
    CommandOption("--json", ("report",), type=bool, help="print report.json as it is"),
    CommandOption("run_a", ("compare",), metavar="RUN_A", doc="a finished run directory"),
    CommandOption("run_b", ("compare",), metavar="RUN_B",
                  doc="a finished run of the same corpus (another model or setting)"),
    CommandOption("--show", ("compare",), type=int, default=5, positive=True,
                  help="papers listed where the runs disagree most (default 5)"),
    CommandOption("--json", ("compare",), type=bool, help="print the comparison as JSON"),
    # status
    CommandOption("--config", ("status",), metavar="job.yaml",
                  help="also say whether this config matches the run's"),
    # finalize
    CommandOption("--index", ("finalize",), type=bool,
                  help="also build the index (ray-embed index)"),
    CommandOption("--map", ("finalize",), type=bool, help="also build the map (ray-embed map)"),
)


def options_of(command: str) -> tuple[CommandOption, ...]:
    """The arguments `command` takes that are not settings, in the order argparse adds them."""
    return tuple(o for o in COMMAND_OPTIONS if command in o.commands)
