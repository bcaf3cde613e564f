"""A transformer encoder's shape (layers, widths) from its config, and the FLOPs of a forward
pass over padded micro-batches (pure).

Per layer and token an encoder layer multiplies by its four attention projections (4 h x h)
and its two feed-forward matrices (h x i, i x h): 2 FLOPs per multiply-add, so
`8 h^2 + 4 h i`. Attention itself adds, per row of padded length L, `Q K^T` and `A V`:
`4 L^2 h` per layer. Embedding look-ups, layer norms, softmax and pooling are left out (a few
per cent at these sizes). MFU counts what the device computed: the padded lengths.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ModelShape:
    layers: int
    hidden: int
    intermediate: int
    heads: int
    params: int = 0            # weights, all of them (embeddings too)

    def linear_flops_per_token(self) -> float:
        return float(self.layers * (8 * self.hidden ** 2 + 4 * self.hidden * self.intermediate))

    def forward_flops(self, padded_lengths: np.ndarray) -> float:
        """FLOPs of the forward passes that computed rows of these padded lengths (each row's
        length is its micro-batch's width)."""
        lengths = np.asarray(padded_lengths, dtype=np.float64)
        return float(lengths.sum() * self.linear_flops_per_token()
                     + 4.0 * self.layers * self.hidden * (lengths ** 2).sum())

    def flops_per_doc(self, tokens: float, padding_efficiency: float = 1.0) -> float:
        """FLOPs of one document of `tokens` real tokens, computed at this padding efficiency."""
        length = tokens / max(padding_efficiency, 1e-9)
        return self.forward_flops(np.array([length]))


def shape_of_config(config: dict, params: int = 0) -> ModelShape:
    """From a transformers `config.json` (BERT, RoBERTa, MPNet, DistilBERT, ... naming)."""
    def first(*names, default=None):
        for name in names:
            if config.get(name) is not None:
                return int(config[name])
        if default is None:
            raise ValueError(f"config.json has none of {', '.join(names)}")
        return default

    hidden = first("hidden_size", "dim", "d_model")
    return ModelShape(layers=first("num_hidden_layers", "n_layers", "num_layers"),
                      hidden=hidden,
                      intermediate=first("intermediate_size", "hidden_dim", "d_ff",
                                         default=4 * hidden),
                      heads=first("num_attention_heads", "n_heads", default=max(1, hidden // 64)),
                      params=params)


def shape_of_folder(folder: str | Path, params: int = 0) -> ModelShape:
    """The shape of the encoder whose `config.json` is in `folder` (a sentence-transformers
    folder keeps it at its root or in its Transformer module's folder)."""
    folder = Path(folder)
    for candidate in (folder / "config.json", *sorted(folder.glob("*/config.json"))):
        if candidate.is_file():
            config = json.loads(candidate.read_text())
            if "model_type" in config or "hidden_size" in config:
                return shape_of_config(config, params)
    raise ValueError(f"{folder}: no transformers config.json")
