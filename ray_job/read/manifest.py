"""The input manifest: what each input file was when a run started (path or URL, size,
version, a fingerprint of its head and tail). A resume compares the inputs with it and
refuses any that changed, appeared or disappeared: the frozen read plan (and so every key,
shard and reject name) is only valid for the files it was made from."""
from __future__ import annotations

import hashlib

from .inputs import InputFile
from ..storage.remote_files import open_stream, user_errors, version_of

EDGE_BYTES = 64 * 1024


def file_identity(f: InputFile) -> dict:
    """Identity of one input file, as plain data for job records."""
    return {"path": f.path, "size": f.size, "version": version_of(f.path),
            "fingerprint": _fingerprint(f.path, f.size)}


def build_manifest(files: list[InputFile]) -> list[dict]:
    return [file_identity(f) for f in files]


def _fingerprint(path: str, size: int) -> str:
    """sha256 of the first and last 64 KiB (the whole file when it is smaller)."""
    digest = hashlib.sha256()
    with user_errors(path), open_stream(path, EDGE_BYTES) as fh:
        digest.update(fh.read(EDGE_BYTES))
        if size > 2 * EDGE_BYTES:
            fh.seek(size - EDGE_BYTES)
        digest.update(fh.read(EDGE_BYTES))
    return digest.hexdigest()[:32]


def manifest_changes(old: list[dict], new: list[dict]) -> list[str]:
    """What differs between two manifests, one phrase per file (empty: nothing changed)."""
    before = {e["path"]: e for e in old}
    after = {e["path"]: e for e in new}
    changes = [f"{p} appeared" for p in after if p not in before]
    changes += [f"{p} disappeared" for p in before if p not in after]
    for path in (p for p in after if p in before):
        what = [k for k in ("size", "fingerprint", "version") if before[path][k] != after[path][k]]
        if what:
            changes.append(f"{path} changed ({', '.join(what)})")
    if not changes and [e["path"] for e in old] != [e["path"] for e in new]:
        changes.append("the inputs are in another order")
    return changes
