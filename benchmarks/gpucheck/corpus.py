"""The real sample's texts at their real lengths, tokenized by the pipeline's own code."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa

TEMPLATE = "{title}{sep}{abstract}"


def load_records(path: Path) -> list[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def render_texts(records: list[dict], sep: str) -> list[str]:
    """`{title}{sep}{abstract}` as the pipeline renders it (whitespace cleaned; a missing
    abstract leaves the title alone, as the SPECTER2 preset does)."""
    from ray_job.read.text import TextTemplate

    template = TextTemplate(TEMPLATE, sep, missing="empty")
    return [template.render(r) for r in records]


def tokenize(source: str, max_length: int, texts: list[str]) -> pa.ListArray:
    """Token ids as a tokenize task makes them (the driver's recipe, rebuilt)."""
    from ray_job.encode.tokenize import texts_encoder, token_array, tokenizer_recipe

    return token_array(texts_encoder(tokenizer_recipe(source, max_length))(texts))


def lengths(ids: pa.ListArray) -> np.ndarray:
    return np.diff(ids.offsets.to_numpy()).astype(np.int64)
