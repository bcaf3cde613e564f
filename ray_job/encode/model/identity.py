"""What a model *is*, beyond its name: a retrained `./my-model` or a Hub repo that moved on
must not pass for the model an earlier run used (`--previous` compares this).

* a local folder: sha256 over its weight files' contents (names and bytes);
* a Hub name: the commit it resolves to now (every replica then loads that commit).
The adapter, when there is one, is identified the same way.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from ...errors import UserError
from .checkpoint import weight_files

CHUNK = 1 << 20
ADAPTER_WEIGHTS = ("*.safetensors", "*.bin")


def local_weights_digest(folder: Path, patterns=None) -> str:
    """sha256 over the (relative name, content) of the weight files under `folder`."""
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    chosen = (weight_files(names) if patterns is None
              else sorted(n for n in names if any(Path(n).match(p) for p in patterns)))
    if not chosen:
        raise UserError(f"model folder {folder} holds no weight files "
                        f"(*.safetensors, pytorch_*.bin)")
    digest = hashlib.sha256()
    for name in chosen:
        digest.update(name.encode() + b"\0")
        with open(folder / name, "rb") as fh:
            for block in iter(lambda: fh.read(CHUNK), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()


def hub_revision(repo: str) -> str:
    """The commit a Hub model name resolves to now (offline: the one in the local cache)."""
    from huggingface_hub import HfApi, snapshot_download

    try:
        sha = HfApi().model_info(repo).sha
    except Exception:  # noqa: BLE001 - offline or unreachable: what this machine has cached
        try:
            sha = Path(snapshot_download(repo, allow_patterns=["config.json"],
                                         local_files_only=True)).name
        except Exception as exc:  # noqa: BLE001 - any failure of the cache look-up: one line
            raise UserError(f"cannot resolve model {repo!r} on the Hub: {exc}") from None
    return "commit:" + str(sha)


def identify(source: str, patterns=None) -> str:
    path = Path(source)
    return local_weights_digest(path, patterns) if path.is_dir() else hub_revision(source)


def model_identity(spec, source: str) -> dict:
    """{"weights": ..., "adapter": ...}: recorded in job.json and embeddings.h5."""
    found = {"weights": identify(source)}
    if spec.adapter:
        adapter = Path(spec.adapter).expanduser()
        found["adapter"] = identify(str(adapter) if adapter.is_dir() else spec.adapter,
                                    ADAPTER_WEIGHTS)
    return found
