"""A model's small files and the size of its weights, without reading a weight.

* `small_files(source)`: a local folder with the model's configuration and tokenizer files: the
  source itself when it is a folder; for a Hub name, a download of only those files.
* `weight_bytes(weights_of(source, folder), subfolders)`: the bytes a replica holds for the
  weights stored directly in those sub-folders ("" = the model's root), from the headers: the
  safetensors header (8 bytes of length, then JSON), or a `.bin` file opened lazily (mmap, meta
  tensors). On the Hub, safetensors headers are read remotely (HTTP range requests); a `.bin` on
  the Hub counts as its file size (an approximation: exact for fp32 weights).
"""
from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Protocol

from .info import LOADED_BYTES_PER_PARAM

SMALL_FILES = ["*.json", "*.txt", "*.model", "*.tiktoken", "*.py"]


def small_files(source: str, revision: str | None = None) -> Path:
    if Path(source).is_dir():
        return Path(source)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(source, allow_patterns=SMALL_FILES, revision=revision))


def dense_state(source: str, folder: str, revision: str | None = None) -> dict:
    """The tensors of the weight file in `folder` of a model (local or on the Hub): its
    safetensors file, else its `pytorch_model.bin`."""
    import torch

    for name in ("model.safetensors", "pytorch_model.bin"):
        path = _model_file(source, f"{folder}/{name}", revision)
        if path is None:
            continue
        if name.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    raise OSError(f"{source}: no weights in {folder}/")


def _model_file(source: str, name: str, revision: str | None) -> Path | None:
    if Path(source).is_dir():
        path = Path(source) / name
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(source, name, revision=revision))
    except EntryNotFoundError:
        return None


def weight_files(names: Iterable[str]) -> list[str]:
    """The weight files among `names` that a loader reads: every `.safetensors` file, and each
    `pytorch_X.bin` that has no `X.safetensors` beside it (loaders prefer safetensors)."""
    names = sorted(names)
    safe = {n for n in names if n.endswith(".safetensors")}

    def counterpart(bin_name: str) -> str:
        path = PurePosixPath(bin_name)
        stem = path.name.removeprefix("pytorch_").removesuffix(".bin")
        return str(path.with_name(stem + ".safetensors"))

    bins = [n for n in names if PurePosixPath(n).name.startswith("pytorch_")
            and n.endswith(".bin") and counterpart(n) not in safe]
    return sorted(safe) + bins


def loaded_bytes(tensors: Iterable[tuple[str, list[int]]]) -> int:
    """Bytes of the floating-point tensors (dtype as safetensors spells it, shape) once loaded;
    integer tensors are buffers (position ids), not parameters."""
    return sum(math.prod(shape) * LOADED_BYTES_PER_PARAM
               for dtype, shape in tensors if dtype.startswith(("F", "BF")))


def safetensors_header(path: Path) -> dict:
    with open(path, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        return json.loads(fh.read(size))


class Weights(Protocol):
    def files(self, folder: str) -> list[str]: ...     # paths of the files directly in folder
    def bytes_of(self, path: str) -> int: ...          # loaded bytes of one weight file


class LocalWeights:
    def __init__(self, root: Path):
        self.root = root

    def files(self, folder: str) -> list[str]:
        where = self.root / folder
        return [str(PurePosixPath(folder, p.name)) for p in where.iterdir() if p.is_file()] \
            if where.is_dir() else []

    def bytes_of(self, path: str) -> int:
        if path.endswith(".safetensors"):
            header = safetensors_header(self.root / path)
            return loaded_bytes((t["dtype"], t["shape"]) for name, t in header.items()
                                if name != "__metadata__")
        import torch

        state = torch.load(self.root / path, map_location="meta", mmap=True, weights_only=True)
        return sum(t.numel() * LOADED_BYTES_PER_PARAM for t in state.values()
                   if t.is_floating_point())


class HubWeights:
    def __init__(self, repo: str):
        from huggingface_hub import HfApi

        self.repo, self.api = repo, HfApi()
        self.all_files = self.api.list_repo_files(repo)

    def files(self, folder: str) -> list[str]:
        parent = PurePosixPath(folder)
        return [f for f in self.all_files if PurePosixPath(f).parent == parent]

    def bytes_of(self, path: str) -> int:
        if path.endswith(".safetensors"):
            meta = self.api.parse_safetensors_file_metadata(self.repo, path)
            return loaded_bytes((t.dtype, t.shape) for t in meta.tensors.values())
        return sum(int(f.size or 0) for f in self.api.get_paths_info(self.repo, [path]))


def weights_of(source: str, folder: Path) -> Weights:
    """The weights of a local model folder, or of a Hub model (asked of the Hub; offline, what
    the local cache holds beside its small files)."""
    if Path(source).is_dir():
        return LocalWeights(Path(source))
    try:
        return HubWeights(source)
    except OSError:
        return LocalWeights(folder)


def weight_bytes(weights: Weights, subfolders: Iterable[str]) -> int:
    return sum(weights.bytes_of(path) for sub in dict.fromkeys(subfolders)
               for path in weight_files(weights.files(sub)))
