"""The defaults of `defaults.py` for one job: the model's size from its files, the node from
the Ray cluster's resources, and the settings the user left unset filled in."""
from __future__ import annotations

from .defaults import (
    CPU_MAX_BATCH_TOKENS,
    Defaults,
    ModelSize,
    Node,
    choose_defaults,
    cpu_defaults,
    typical_tokens,
)
from .info import ModelInfo
from .shape import shape_of_folder

ACCELERATOR = "accelerator_type:"        # Ray's resource naming a node's GPU type


def model_size(info: ModelInfo, tokens_per_doc: float | None = None) -> ModelSize | None:
    """From the model's config.json (its small files); None where it has no encoder config."""
    from .checkpoint import small_files

    try:
        shape = shape_of_folder(small_files(info.source), params=info.param_bytes // 4)
    except (OSError, ValueError):
        return None
    return ModelSize(shape, info.param_bytes, info.max_seq_length,
                     tokens_per_doc or typical_tokens(info.max_seq_length))


def node_of(cluster: dict, device: str, native_bf16: bool = False) -> Node:
    gpus = float(cluster.get("GPU", 0))
    names = sorted(k[len(ACCELERATOR):] for k in cluster if k.startswith(ACCELERATOR))
    return Node(device, float(cluster.get("CPU", 0)) / gpus if gpus else 0.0,
                names[0] if names else None, native_bf16)


def job_defaults(info: ModelInfo, node: Node, call_rows: int) -> Defaults:
    if node.device != "cuda":
        return cpu_defaults(node)
    size = model_size(info)
    if size is None:
        return Defaults("fp16", CPU_MAX_BATCH_TOKENS, 1, None, None,
                        ("the model's shape is unknown (no encoder config.json): "
                         f"{CPU_MAX_BATCH_TOKENS:,} tokens, 1 replica per GPU",))
    return choose_defaults(size, node, call_rows)


def with_defaults(cfg, defaults: Defaults):
    """`cfg` with the token budget and the GPUs per replica it left unset chosen."""
    options = cfg.options
    return cfg.replace(
        max_batch_tokens=options.max_batch_tokens or defaults.max_batch_tokens,
        gpus_per_replica=options.gpus_per_replica or 1.0 / defaults.replicas_per_gpu)


def replica_budget(info: ModelInfo, device) -> int:
    """A replica's token budget when none was given (the Encoder used in-process): the rule's,
    for this replica's device."""
    if device.type != "cuda":
        return CPU_MAX_BATCH_TOKENS
    import torch

    node = Node("cuda", 0.0, torch.cuda.get_device_name(device))
    return job_defaults(info, node, 512).max_batch_tokens
