"""The CPU tokenization stage: text in, int32 token ids out (no padding, truncated).

Runs as Ray tasks apart from the encoders, so the replicas only ever see token ids.
"""
from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa

TOKEN_TYPE = pa.list_(pa.int32())


@functools.lru_cache(maxsize=4)
def load_tokenizer(source: str, trust_remote_code: bool = False, revision: str | None = None):
    """One tokenizer per worker process and source (Ray reuses worker processes)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code,
                                         revision=revision)


def tokenize_texts(tokenizer, texts: list[str], max_length: int) -> pa.ListArray:
    encoded = tokenizer(texts, truncation="longest_first", max_length=max_length,
                        return_attention_mask=False, return_token_type_ids=False)["input_ids"]
    lengths = np.fromiter((len(ids) for ids in encoded), dtype=np.int32, count=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter((t for ids in encoded for t in ids), dtype=np.int32, count=int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))


def tokenize_batch(batch: pa.Table, tokenizer_source: str, max_length: int,
                   trust_remote_code: bool = False, revision: str | None = None) -> pa.Table:
    """Ray map_batches function: replaces the `text` column by `input_ids`."""
    if batch.num_rows == 0:
        return batch.drop_columns(["text"]).append_column("input_ids", pa.array([], TOKEN_TYPE))
    tokenizer = load_tokenizer(tokenizer_source, trust_remote_code, revision)
    ids = tokenize_texts(tokenizer, batch.column("text").to_pylist(), max_length)
    return batch.drop_columns(["text"]).append_column("input_ids", ids)
