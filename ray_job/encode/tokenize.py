"""The CPU tokenization stage: text in, int32 token ids out (no padding, truncated).

Runs as Ray tasks apart from the encoders, so the replicas only ever see token ids. The driver
makes the tokenizer once and sends it as plain data (`TokenizerRecipe`): a fast tokenizer
travels as its Rust tokenizer, so the tasks need neither transformers nor torch. A row the
tokenizer fails on is isolated (the batch is split in halves until the failing rows stand
alone) and rejected as `untokenizable`; the rest of its batch goes on. The read stage has
already rejected text that is not valid UTF-8 (`bad_text`), so this is for the tokenizer's own
failures. A rejected row stays in its batch, without token ids and with its reject (the reject
column, rundir/rejects.py): the shard sink writes it to the run directory, one file per
rejected row named after the row's key, in the step that writes its block's shard.
"""
from __future__ import annotations

import functools
import itertools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..redact import redacting
from ..rundir.rejects import REJECT_COLUMN, reject_cell

if TYPE_CHECKING:
    from ..rundir.stage import RunContext

TOKEN_TYPE = pa.list_(pa.int32())
HEALTH_PROBE = "a"   # a text every working tokenizer can take

Encode = Callable[[list[str]], list[list[int]]]   # texts -> token ids


@dataclass(frozen=True)
class TokenizerRecipe:
    """What a tokenize task needs to rebuild the driver's tokenizer: plain data, made once on
    the driver (`tokenizer_recipe`).

    A transformers fast tokenizer whose class leaves batch encoding alone travels as its Rust
    tokenizer, serialized with truncation set (`rust`: the `tokenizers` JSON) plus the one
    setting that JSON leaves out (`split_special_tokens`). The task rebuilds it with the
    `tokenizers` library alone and never imports transformers (nor torch, which transformers
    imports): 4.0 s of one core and 340 MiB of RSS less in every worker process that tokenizes
    (measured on the bundled model: +14 MiB and 0.03 s instead of +355 MiB and 4.0 s).
    Any other tokenizer (slow, or a class with its own batch encoding) has `rust=None`: the task
    loads `source` at `revision` through transformers, as the driver did."""
    source: str
    max_length: int
    trust_remote_code: bool = False
    revision: str | None = None
    rust: str | None = None
    split_special_tokens: bool = False
    # how the model's authors call it: `prompt` goes before every text and counts toward
    # `max_length` (sentence-transformers truncates prompt + text as one); `lowercase`: the
    # Transformer module's do_lower_case
    prompt: str = ""
    lowercase: bool = False


def tokenizer_recipe(source: str, max_length: int, trust_remote_code: bool = False,
                     revision: str | None = None, prompt: str = "",
                     lowercase: bool = False) -> TokenizerRecipe:
    """The recipe of `source`'s tokenizer truncating at `max_length` (on the driver)."""
    tokenizer = load_tokenizer(source, trust_remote_code, revision, lowercase)
    backend = rust_backend(tokenizer, max_length)
    return TokenizerRecipe(source, max_length, trust_remote_code, revision,
                           None if backend is None else backend.to_str(),
                           False if backend is None else bool(backend.encode_special_tokens),
                           prompt, lowercase)


def model_recipe(info, trust_remote_code: bool = False,
                 revision: str | None = None) -> TokenizerRecipe:
    """The recipe of the model side `info` (a ModelInfo) describes: its tokenizer, max length,
    prompt and lowercasing, as the tokenize stage and `search` use it."""
    return tokenizer_recipe(info.tokenizer_source, info.max_seq_length, trust_remote_code,
                            revision, info.prompt, info.lowercase)


def texts_encoder(recipe: TokenizerRecipe) -> Encode:
    """texts -> token ids with the recipe's tokenizer (built once per worker process), the
    recipe's prompt before each text."""
    if recipe.rust is not None:
        encode = functools.partial(encode_with_rust,
                                   rust_tokenizer(recipe.rust, recipe.split_special_tokens))
    else:
        tokenizer = load_tokenizer(recipe.source, recipe.trust_remote_code, recipe.revision,
                                   recipe.lowercase)
        encode = functools.partial(encode_texts, tokenizer, max_length=recipe.max_length)
    return functools.partial(encode_prompted, encode, recipe.prompt) if recipe.prompt else encode


def encode_prompted(encode: Encode, prompt: str, texts: list[str]) -> list[list[int]]:
    return encode([prompt + text for text in texts])


@functools.lru_cache(maxsize=4)
def rust_tokenizer(serialized: str, split_special_tokens: bool):
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(serialized)
    backend.encode_special_tokens = split_special_tokens
    return backend


@functools.lru_cache(maxsize=4)
def load_tokenizer(source: str, trust_remote_code: bool = False, revision: str | None = None,
                   lowercase: bool = False):
    """One tokenizer per worker process and source (Ray reuses worker processes)."""
    return st_tokenizer(source, trust_remote_code, lowercase, revision)


def st_tokenizer(source: str, trust_remote_code: bool = False, lowercase: bool = False,
                 revision: str | None = None):
    """The tokenizer as sentence-transformers' Transformer module sets it up: with
    `do_lower_case`, a Lowercase normalizer in front of a fast tokenizer's own (a slow one is
    told `do_lower_case`)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code,
                                              revision=revision)
    if not lowercase:
        return tokenizer
    if getattr(tokenizer, "is_fast", False):
        from tokenizers import normalizers

        backend = tokenizer.backend_tokenizer
        current = backend.normalizer
        parts = (list(current) if isinstance(current, normalizers.Sequence)
                 else [] if current is None else [current])
        if not any(isinstance(part, normalizers.Lowercase) for part in parts):
            backend.normalizer = normalizers.Sequence([normalizers.Lowercase(), *parts])
    else:
        tokenizer.do_lower_case = True
    return tokenizer


def encode_texts(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids of each text, truncated to `max_length`, special tokens added, no padding.
    A transformers fast tokenizer's own Rust tokenizer is called directly (the same ids as
    `tokenizer(texts, ...)`, without building a BatchEncoding: ~1.3x the rate)."""
    backend = rust_backend(tokenizer, max_length)
    if backend is None:
        return tokenizer(texts, truncation="longest_first", max_length=max_length,
                         return_attention_mask=False, return_token_type_ids=False)["input_ids"]
    return encode_with_rust(backend, texts)


def encode_with_rust(backend, texts: list[str]) -> list[list[int]]:
    """Token ids from a `tokenizers.Tokenizer` set up by `rust_backend`."""
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)   # fast: no offsets
    return [e.ids for e in encode(texts, add_special_tokens=True)]


_BACKENDS: dict[tuple[int, int], tuple[object, object]] = {}   # -> (tokenizer, its copy)


def rust_backend(tokenizer, max_length: int):
    """A copy of the `tokenizers.Tokenizer` under a transformers fast tokenizer, set up as its
    `__call__` sets it for `truncation="longest_first", max_length=max_length` (truncation
    side, special tokens not split, no padding); None for a slow tokenizer or one whose class
    changes batch encoding (remote code, say): those are called through transformers."""
    key = (id(tokenizer), max_length)
    held = _BACKENDS.get(key)
    if held is None or held[0] is not tokenizer:    # holding the tokenizer keeps its id unique
        held = _BACKENDS[key] = (tokenizer, _truncating_copy(tokenizer, max_length))
    return held[1]


# transformers' fast tokenizers whose `_batch_encode_plus` only refuses pre-split words
# without `add_prefix_space` (never passed here) before calling the base class's: RoBERTa's
# byte-level BPE and its kin encode a batch exactly as the base class does
PRESPLIT_GUARDS = ("RobertaTokenizerFast", "GPT2TokenizerFast", "BartTokenizerFast",
                   "DebertaTokenizerFast", "LongformerTokenizerFast", "LEDTokenizerFast",
                   "MvpTokenizerFast", "BlenderbotTokenizerFast", "CodeGenTokenizerFast",
                   "BloomTokenizerFast", "CohereTokenizerFast", "WhisperTokenizerFast")
# where a fast tokenizer encodes a batch: transformers 4 `_batch_encode_plus`; transformers 5
# `_encode_plus` (its fast base is `TokenizersBackend`, still exported as
# PreTrainedTokenizerFast, and has no `_batch_encode_plus`)
BATCH_METHODS = ("_batch_encode_plus", "_encode_plus")


def _encodes_batches_as_the_base_class(tokenizer) -> bool:
    import transformers
    from transformers import PreTrainedTokenizerFast
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    if not isinstance(tokenizer, PreTrainedTokenizerFast):
        return False
    cls = type(tokenizer)
    same = {"__call__": PreTrainedTokenizerBase, "_call_one": PreTrainedTokenizerBase,
            "batch_encode_plus": PreTrainedTokenizerBase}
    if any(getattr(cls, name, None) is not getattr(base, name, None)
           for name, base in same.items()):
        return False
    method = next(m for m in BATCH_METHODS if hasattr(PreTrainedTokenizerFast, m))
    guards = {getattr(getattr(transformers, name, None), method, None)
              for name in PRESPLIT_GUARDS} - {None}
    batch = getattr(cls, method)
    return batch is getattr(PreTrainedTokenizerFast, method) or batch in guards


def _truncating_copy(tokenizer, max_length: int):
    if not _encodes_batches_as_the_base_class(tokenizer):
        return None
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.enable_truncation(max_length, stride=0, strategy="longest_first",
                              direction=tokenizer.truncation_side)
    backend.encode_special_tokens = bool(getattr(tokenizer, "split_special_tokens", False))
    return backend


def token_array(encoded: list[list[int]]) -> pa.ListArray:
    lengths = np.fromiter(map(len, encoded), dtype=np.int32, count=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int32,
                       count=int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))


def tokenize_texts(tokenizer, texts: list[str], max_length: int) -> pa.ListArray:
    return token_array(encode_texts(tokenizer, texts, max_length))


def _is_row_failure(exc: BaseException) -> bool:
    """Exceptions a tokenizer raises on bad input; a Rust panic (pyo3's PanicException) is a
    BaseException, interrupts and exits are not a row's fault."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def encode_isolating(encode, texts: list[str],
                     start: int = 0) -> tuple[list, dict[int, BaseException]]:
    """`encode(texts)` -> per-text results, and {row: error} of the rows it fails on alone
    (their results are None). Bisects: k bad rows cost O(k log n) calls, none when all is well."""
    try:
        return list(encode(texts)), {}
    except BaseException as exc:
        if not _is_row_failure(exc):
            raise
        if len(texts) == 1:
            return [None], {start: exc}
    mid = len(texts) // 2
    left, left_failed = encode_isolating(encode, texts[:mid], start)
    right, right_failed = encode_isolating(encode, texts[mid:], start + mid)
    return left + right, {**left_failed, **right_failed}


def tokenize_rows(encode: Encode, batch: pa.Table) -> tuple[pa.Table, list[dict]]:
    """The batch with `input_ids` instead of `text`, less the rows `encode` fails on; and
    reject records for those. A tokenizer that fails even on a probe text is broken, not the
    rows: its error is raised."""
    from ..read.keys import split_key
    from ..read.text import printable
    from ..rundir.rejects import reject_record

    encoded, failed = encode_isolating(encode, batch.column("text").to_pylist())
    if failed:
        encode([HEALTH_PROBE])               # raises when the tokenizer itself is broken
    keep = np.ones(batch.num_rows, dtype=bool)
    keep[list(failed)] = False
    keys, ids = batch.column("key").to_pylist(), batch.column("id").to_pylist()
    rejects = []
    for row, exc in sorted(failed.items()):
        file_index, position = split_key(keys[row])
        detail = printable(f"{type(exc).__name__}: {exc}".splitlines()[0])
        rejects.append(reject_record("untokenizable", detail, keys[row],
                                     f"file #{file_index}:{position}", ids[row]))
    kept = batch.filter(pa.array(keep)) if failed else batch
    ids_array = token_array([e for e, ok in zip(encoded, keep, strict=True) if ok])
    return kept.drop_columns(["text"]).append_column("input_ids", ids_array), rejects


def tokenize_batch(batch: pa.Table, context: RunContext) -> pa.Table:
    """The tokenize stage (a Ray map_batches function): replaces the `text` column by
    `input_ids`, with the tokenizer `context.recipe` describes, holding
    `context.task_threads` CPUs. A row the tokenizer fails on stays in the batch, with no
    token ids and its reject in the reject column (rundir/rejects.py): the shard sink writes
    it. Errors leave redacted (Ray formats them for the driver)."""
    with redacting():
        cap_rust_threads(context.task_threads)
        out, rejected = _tokenize(batch, context.recipe)
        return with_rejected_rows(out, rejected)


def tokenize_table(batch: pa.Table, recipe: dict, threads: int | None = None) -> pa.Table:
    """`tokenize_batch` outside a run: a row the tokenizer fails on is an error (a row is
    never dropped silently)."""
    with redacting():
        cap_rust_threads(threads)
        out, rejected = _tokenize(batch, recipe)
    if rejected.num_rows:
        raise RuntimeError(f"{rejected.num_rows} untokenizable row(s) and no run directory to "
                           f"reject them in: "
                           f"{json.loads(rejected.column(REJECT_COLUMN)[0].as_py())['record']}")
    return out


def _tokenize(batch: pa.Table, recipe: dict) -> tuple[pa.Table, pa.Table]:
    """The batch tokenized (`tokenize_rows`), and the rows it failed on, each with empty
    token ids and its reject."""
    if batch.num_rows == 0:
        out = batch.drop_columns(["text"]).append_column("input_ids", pa.array([], TOKEN_TYPE))
        return out, _rejected_rows(out, [])
    out, rejects = tokenize_rows(texts_encoder(TokenizerRecipe(**recipe)), batch)
    gone = batch.filter(pc.is_in(batch.column("key"), pa.array(
        [r["key"] for r in rejects], pa.int64()))) if rejects else batch.slice(0, 0)
    gone = gone.drop_columns(["text"]).append_column(
        "input_ids", pa.array([[]] * gone.num_rows, TOKEN_TYPE))
    return out, _rejected_rows(gone, rejects)


def _rejected_rows(rows: pa.Table, rejects: list[dict]) -> pa.Table:
    by_key = {r["key"]: reject_cell("tokenize", r) for r in rejects}
    cells = [by_key[key] for key in rows.column("key").to_pylist()]
    return rows.append_column(REJECT_COLUMN, pa.array(cells, pa.string()))


def with_rejected_rows(out: pa.Table, rejected: pa.Table) -> pa.Table:
    """The tokenized rows (no reject) followed by the rejected ones, in one table."""
    out = out.append_column(REJECT_COLUMN, pa.nulls(out.num_rows, pa.string()))
    return pa.concat_tables([out, rejected.select(out.column_names)]) if rejected.num_rows \
        else out


def cap_rust_threads(threads: int | None) -> None:
    """Size the Rust tokenizer's thread pool to the CPUs a task holds. Left alone, every
    tokenize task on a node starts one thread per core of the node (60 tasks on a 64-core
    node: 3,840 threads). The pool starts once per worker process, at its first batch, and
    reads RAYON_NUM_THREADS then; one set on the node by hand is kept."""
    if threads:
        os.environ.setdefault("RAYON_NUM_THREADS", str(max(1, int(threads))))
