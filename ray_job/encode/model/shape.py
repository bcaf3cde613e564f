"""A transformer encoder's shape (layers, widths) from its config, and the FLOPs of a forward
pass over padded micro-batches (pure).

Per layer and token a layer multiplies by its attention projections (Q and O: h x q, K and V:
h x kv, where q = heads x head dim and kv = key-value heads x head dim; both h in a BERT) and
its feed-forward matrices (two of h x i in a BERT; three in a gated one: Qwen, Gemma,
ModernBERT's GLU): 2 FLOPs per multiply-add, so `4 h q + 4 h kv + 2 m h i` (`8 h^2 + 4 h i`
for a BERT). Attention itself adds, per row of padded length L, `Q K^T` and `A V`: `4 L^2 q`
per layer. Embedding look-ups, layer norms, softmax and pooling are left out (a few per cent at
these sizes). MFU counts what the device computed: the padded lengths.
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
    query_width: int = 0       # heads x head dim (0: hidden)
    kv_width: int = 0          # key-value heads x head dim (0: hidden)
    mlp_matrices: int = 2      # 3 for a gated feed-forward (SwiGLU, GeGLU)

    def linear_flops_per_token(self) -> float:
        h, q = self.hidden, self.query_width or self.hidden
        kv = self.kv_width or self.hidden
        return float(self.layers * (4 * h * q + 4 * h * kv
                                    + 2 * self.mlp_matrices * h * self.intermediate))

    def forward_flops(self, padded_lengths: np.ndarray) -> float:
        """FLOPs of the forward passes that computed rows of these padded lengths (each row's
        length is its micro-batch's width)."""
        lengths = np.asarray(padded_lengths, dtype=np.float64)
        return float(lengths.sum() * self.linear_flops_per_token()
                     + 4.0 * self.layers * (self.query_width or self.hidden)
                     * (lengths ** 2).sum())

    def flops_per_doc(self, tokens: float, padding_efficiency: float = 1.0) -> float:
        """FLOPs of one document of `tokens` real tokens, computed at this padding efficiency."""
        length = tokens / max(padding_efficiency, 1e-9)
        return self.forward_flops(np.array([length]))


# model types whose feed-forward is gated (three matrices of h x i, or GLU's two-wide input)
GATED_MLP = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text",
             "modernbert")


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
    heads = first("num_attention_heads", "n_heads", default=max(1, hidden // 64))
    head_dim = first("head_dim", default=hidden // heads)
    kv_heads = first("num_key_value_heads", default=heads)
    return ModelShape(layers=first("num_hidden_layers", "n_layers", "num_layers"),
                      hidden=hidden,
                      intermediate=first("intermediate_size", "hidden_dim", "d_ff",
                                         default=4 * hidden),
                      heads=heads, params=params,
                      query_width=0 if heads * head_dim == hidden else heads * head_dim,
                      kv_width=0 if kv_heads * head_dim == hidden else kv_heads * head_dim,
                      mlp_matrices=3 if config.get("model_type") in GATED_MLP else 2)


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
