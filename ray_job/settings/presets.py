"""Named bundles of settings (`--preset`, `preset:`); explicit settings (YAML or flags) win over
a preset's (config.apply_preset)."""
from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # allenai's published recipe: base model + proximity adapter (active), CLS pooling,
    # title + sep_token + abstract (abstract may be missing), max_length 512, no token type ids
    "specter2": {"model": "allenai/specter2_base", "adapter": "allenai/specter2",
                 "backend": "transformers", "pooling": "cls", "normalize": False,
                 "text": "{title}{sep}{abstract}", "max_seq_length": 512,
                 "on_missing_field": "empty"},
    # the prompts these families' cards ask for, which their sentence-transformers configs do
    # not carry (a model's own prompts are applied without a preset: encode/model/prompts.py)
    "e5": {"model": "intfloat/e5-base-v2", "prompt": "passage: ", "query_prompt": "query: "},
    "bge": {"model": "BAAI/bge-base-en-v1.5",
            "query_prompt": "Represent this sentence for searching relevant passages: "},
    "nomic": {"model": "nomic-ai/nomic-embed-text-v1.5", "prompt": "search_document: ",
              "query_prompt": "search_query: "},
    # EmbeddingGemma's card: a document with a title is "title: {title} | text: {content}",
    # with no prompt before it (its "document" prompt is that format for a document without one)
    "embeddinggemma": {"model": "google/embeddinggemma-300m", "prompt": "",
                       "text": "title: {title} | text: {abstract}"},
}
