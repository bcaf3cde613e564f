"""What lives in a run directory: every name and pattern, declared once (RunDir uses them)."""
from __future__ import annotations

import re

JOB = "job.json"                  # resolved config, model facts, versions, config hash
# counts, timings (written last: a reader that sees it sees the rest)
REPORT = "report.json"
H5 = "embeddings.h5"              # the result
DUCKDB = "embeddings.duckdb"      # export
INT8 = "embeddings-int8.h5"       # export: int8 vectors (finalize/quantize.py)
BINARY = "embeddings-binary.h5"   # export: one bit per dimension, packed (finalize/quantize.py)
LANCE = "lance"                   # export folder: a LanceDB database (finalize/lance_export.py)
LANCE_TABLE = "papers"            # ... holding one table: lance/papers.lance/
PARQUET = "parquet"               # export folder: part-*.parquet
PARQUET_GLOB = "part-*.parquet"
CARD = "README.md"                # dataset card, made when publishing
# how every dataset card of ours begins (a README.md that does not is a user's)
# how the dataset card begins (its front matter)
CARD_HEAD = "---\ntags: [embeddings, ray-embed]\n"
SHARDS = "shards"                 # part-*.arrow, each complete or absent
SHARD_GLOB = "part-*.arrow"
SHARD_TEMP_GLOB = ".part-*.tmp"   # left by a writer that was killed
CORRUPT = "corrupt"               # shards/corrupt/: shards that failed a check
REJECTS = "rejects"               # unit-*.jsonl per read unit, tokenize-<key>.jsonl per
                                  # untokenizable row, duplicates.jsonl from finalize
REJECTS_GLOB = "*.jsonl"
DUPLICATES = "duplicates.jsonl"
REUSE = "reuse"                   # incremental runs: unit-*.arrow rows + unit-*.json counts
REUSE_ROWS_GLOB = "unit-*.arrow"
REUSE_COUNTS_GLOB = "unit-*.json"
INDEX = "index"                   # nearest-neighbour index (ray-embed index)
INDEX_ANN = f"{INDEX}/ann.faiss"
INDEX_TITLES = f"{INDEX}/titles.arrow"
INDEX_INFO = f"{INDEX}/index.json"  # written last: the index is current when it is there
MAP = "map"                       # the 2-D map of the papers (ray-embed map)
MAP_COORDS = f"{MAP}/coords.arrow"  # x, y (and the label) of every row of embeddings.h5
MAP_PICTURE = f"{MAP}/map.png"    # the picture (datamapplot)
MAP_INFO = f"{MAP}/map.json"      # written last: the map is current when it is there
QUALITY = "quality"               # what finalize measured of the vectors (quality/)
QUALITY_SAMPLE = f"{QUALITY}/sample.arrow"  # the sampled rows: id, key, label, title, vector
# the map coloured otherwise (ray-embed map --color), one picture per colouring
MAP_COLOURED = {"agreement": f"{MAP}/map-agreement.png",   # k-NN label agreement
                "duplicates": f"{MAP}/map-duplicates.png"}  # near-duplicate components
DEDUP = "dedup"                   # near-duplicate papers (ray-embed dedup)
DEDUP_PAIRS = f"{DEDUP}/pairs.parquet"  # one row per dropped paper, its kept paper, the cosine
DEDUP_INFO = f"{DEDUP}/dedup.json"  # written last: the dedup is current when it is there
DEMO = "demo"                     # the built-in demo corpus, when no input is given
LEASE = "lease.json"              # the driver working on this run (one at a time)
PLAN = "plan.json"                # input manifest + read units, frozen by the first driver
READS = "reads"                   # unit-*.json: rows the read stage saw per unit (reconciliation)
READS_GLOB = "unit-*.json"
LOGS = "logs"                     # driver-<UTC time>-<pid>.log: the full traceback of a failure

# what `ray-embed upload` publishes, in this order (report.json last)
RESULT_FILES = (H5, INT8, BINARY, DUCKDB, JOB, CARD, REPORT)
TREE = "**"                       # a result folder published with every file below it
RESULT_FOLDERS = {PARQUET: PARQUET_GLOB, INDEX: "*", MAP: "*", DEDUP: "*", LANCE: TREE}
LAST_IN_FOLDER = (INDEX_INFO, MAP_INFO, DEDUP_INFO)   # a folder's record of what it holds goes last
# What a fresh start removes: in each of these folders ("" = the run directory itself) only
# the names ray-embed writes there (full-match regexes), and the temp files its writers leave
# (`.NAME.<hex>.tmp`, NAME one of those); the card (CARD) only when it begins with CARD_HEAD.
# Anything else (a user's README.md, parquet/2025.parquet, index/notes.txt) stays.
UNIT_NAME = r"\d{5,}-\d{13,}"                              # ReadUnit.name (zero-padded, may grow)
_SHARD_NAME = r"part-[0-9a-f]{16}-\d+-[0-9a-f]{8}\.arrow"   # shards.shard_name
OWNED = {
    "": tuple(map(re.escape, (JOB, REPORT, PLAN, H5, INT8, BINARY, DUCKDB))),
    SHARDS: (_SHARD_NAME,),
    f"{SHARDS}/{CORRUPT}": (_SHARD_NAME,),
    REJECTS: (rf"unit-{UNIT_NAME}\.jsonl", r"[a-z]+-\d{19}\.jsonl", re.escape(DUPLICATES)),
    REUSE: (rf"unit-{UNIT_NAME}\.arrow", rf"unit-{UNIT_NAME}\.json"),
    READS: (rf"unit-{UNIT_NAME}\.json",),
    PARQUET: (r"part-\d{5,}\.parquet",),
    INDEX: tuple(re.escape(n.split("/", 1)[1]) for n in (INDEX_ANN, INDEX_TITLES, INDEX_INFO)),
    MAP: tuple(re.escape(n.split("/", 1)[1])
               for n in (MAP_COORDS, MAP_PICTURE, MAP_INFO, *MAP_COLOURED.values())),
    QUALITY: (re.escape(QUALITY_SAMPLE.split("/", 1)[1]),),
    DEDUP: tuple(re.escape(n.split("/", 1)[1]) for n in (DEDUP_PAIRS, DEDUP_INFO)),
}
# folders ray-embed writes whole, every file below them its own (a Lance table's files)
OWNED_TREES = (f"{LANCE}/{LANCE_TABLE}.lance",)
# made before a run has its job.json (the lease, the demo corpus): a folder holding only
# these (and no job.json) is still ray-embed's
EARLY = {"": (re.escape(LEASE),), DEMO: (r"arxiv-demo-\d+\.jsonl",)}
TEMP_FILE = re.compile(r"\.(?P<name>.+)\.[0-9a-f]+\.tmp")


def in_owned_tree(folder: str, name: str) -> bool:
    """Whether `name` (a path below `folder`) lies in a tree ray-embed writes whole."""
    path = f"{folder}/{name}"
    return any(path.startswith(f"{tree}/") for tree in OWNED_TREES)


def owned(folder: str, name: str, table: dict[str, tuple[str, ...]] = OWNED) -> bool:
    """Whether `name` in `folder` of a run directory is one ray-embed writes there (per
    `table`), or the temp file of one."""
    patterns = table.get(folder, ())
    temp = TEMP_FILE.fullmatch(name)
    candidate = temp.group("name") if temp else name
    return any(re.fullmatch(p, candidate) for p in patterns)


def declared(store, folder: str, pattern: str) -> list[str]:
    """The files in `folder` of the run directory at `store` matching `pattern` that are
    ray-embed's (`owned`): a user's file there is never read, moved, published or removed as
    one of them."""
    return [n for n in store.sub(folder).names(pattern) if owned(folder, n)]


def unit_rejects(unit_name: str) -> str:
    return f"unit-{unit_name}.jsonl"


ROW_REJECTS_GLOB = "*-" + "[0-9]" * 19 + ".jsonl"


def row_rejects(stage: str, key: int) -> str:
    """One row rejected after the read stage (e.g. by the tokenizer), named after its key."""
    return f"{stage}-{key:019d}.jsonl"


def key_of_row_rejects(name: str) -> int:
    return int(name[-len(".jsonl") - 19:-len(".jsonl")])


def unit_reuse_rows(unit_name: str) -> str:
    return f"unit-{unit_name}.arrow"


UNIT_REJECTS_GLOB = "unit-*.jsonl"


def unit_of(name: str) -> str:
    """The unit name in a per-unit file name (unit-NAME.jsonl / .json / .arrow)."""
    return name[len("unit-"):].rsplit(".", 1)[0]


def unit_reads(unit_name: str) -> str:
    return f"unit-{unit_name}.json"


def unit_reuse_counts(unit_name: str) -> str:
    return f"unit-{unit_name}.json"


def driver_log(stamp: str, pid: int) -> str:
    """The log of one failed command (`stamp`: its UTC time, e.g. 20261201T221500Z)."""
    return f"{LOGS}/driver-{stamp}-{pid}.log"
