"""The forward pass of a plain sentence-transformers model (`st_format.NativePlan`):
sentence-transformers' operations, in its order. Imported by the replica only (torch).

Precision: the transformer runs in the replica's precision (under its autocast, in half
weights for the `*-weights` precisions); everything after it (Pooling, Dense, Normalize) runs
in float32 on float32 inputs, outside autocast (`heads_in_fp32`). Under autocast a Dense layer
returns half floats and a Normalize of those is off unit length by up to 1e-2 (EmbeddingGemma's
Dense -> Normalize stack); a decoder's last hidden state is half too. The heads are a few
matrix-vector products per row: nothing to save there.
"""
from __future__ import annotations

import contextlib

import torch

from .st_format import DenseSpec, NativePlan

ACTIVATIONS = {"torch.nn.modules.activation.Tanh": torch.nn.Tanh,
               "torch.nn.modules.linear.Identity": torch.nn.Identity}


def st_pool(tokens: torch.Tensor, attention_mask: torch.Tensor,
            modes: tuple[str, ...]) -> torch.Tensor:
    """sentence-transformers' Pooling over right-padded rows: each mode, concatenated."""
    mask = attention_mask.unsqueeze(-1).expand_as(tokens).to(tokens.dtype)
    return torch.cat([POOLERS[mode](tokens, attention_mask, mask) for mode in modes], dim=-1)


def _cls(tokens, attention_mask, mask):
    first = attention_mask.to(torch.int).argmax(dim=1)
    index = first.unsqueeze(-1).unsqueeze(1).expand(-1, 1, tokens.shape[-1])
    return torch.gather(tokens, 1, index).squeeze(1)


def _max(tokens, attention_mask, mask):
    return tokens.masked_fill(mask == 0, float("-inf")).max(dim=1).values


def _mean_parts(tokens, mask):
    return (tokens * mask).sum(dim=1), torch.clamp(mask.sum(dim=1), min=1e-9)


def _mean(tokens, attention_mask, mask):
    total, count = _mean_parts(tokens, mask)
    return total / count


def _mean_sqrt_len(tokens, attention_mask, mask):
    total, count = _mean_parts(tokens, mask)
    return total / torch.sqrt(count)


def _weighted_mean(tokens, attention_mask, mask):
    weights = (torch.arange(1, tokens.shape[1] + 1, device=tokens.device)
               .unsqueeze(0).unsqueeze(-1).expand_as(tokens).to(tokens.dtype))
    weighted = mask * weights
    return (tokens * weighted).sum(dim=1) / torch.clamp(weighted.sum(dim=1), min=1e-9)


def _last_token(tokens, attention_mask, mask):
    seq_len = tokens.shape[1]
    values, indices = attention_mask.flip(1).max(1)
    indices = torch.where(values == 0, seq_len - 1, indices)
    index = (seq_len - indices - 1).unsqueeze(-1).unsqueeze(1).expand(-1, 1, tokens.shape[-1])
    return torch.gather(tokens * mask, 1, index).squeeze(dim=1)


POOLERS = {"cls": _cls, "max": _max, "mean": _mean, "mean_sqrt_len_tokens": _mean_sqrt_len,
           "weightedmean": _weighted_mean, "lasttoken": _last_token}


def heads_in_fp32(tokens: torch.Tensor):
    """The context the modules after the transformer run in: autocast off (float32)."""
    return torch.autocast(tokens.device.type, enabled=False) if tokens.device.type in (
        "cpu", "cuda", "mps") else contextlib.nullcontext()


def pooling_mask(attention_mask: torch.Tensor, skip: int) -> torch.Tensor:
    """The mask Pooling reads: the first `skip` positions (a prompt the model's Pooling leaves
    out, `include_prompt: false`) left out, as sentence-transformers does for right-padded
    rows."""
    if not skip:
        return attention_mask
    mask = attention_mask.clone()
    mask[:, :skip] = 0
    return mask


class NativeSentenceModel(torch.nn.Module):
    """Transformer -> Pooling -> Dense* -> Normalize?, as one module. `encoder` is the body
    (what half weights halve); `prompt_skip`: leading tokens the Pooling leaves out."""

    def __init__(self, encoder: torch.nn.Module, plan: NativePlan, denses: list[torch.nn.Module],
                 prompt_skip: int = 0):
        super().__init__()
        self.encoder = encoder
        self.plan = plan
        self.denses = torch.nn.ModuleList(denses)
        self.prompt_skip = prompt_skip

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        tokens = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              return_dict=True).last_hidden_state
        with heads_in_fp32(tokens):
            emb = st_pool(tokens.float(), pooling_mask(attention_mask, self.prompt_skip),
                          self.plan.pooling_modes)
            for dense in self.denses:
                emb = dense(emb)
            return torch.nn.functional.normalize(emb, p=2, dim=1) if self.plan.normalize else emb


class DenseLayer(torch.nn.Module):
    """sentence-transformers' Dense: activation(linear(x)); its weights are `linear.*`."""

    def __init__(self, spec: DenseSpec, state: dict[str, torch.Tensor]):
        super().__init__()
        self.linear = torch.nn.Linear(spec.in_features, spec.out_features, bias=spec.bias)
        self.linear.load_state_dict({k.removeprefix("linear."): v for k, v in state.items()})
        self.activation = ACTIVATIONS[spec.activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(x))
