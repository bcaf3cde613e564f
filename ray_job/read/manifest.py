"""The input manifest: what each input file was when a run started (its URL without secrets,
size, version, a fingerprint of its head and tail). A resume compares the inputs with it and
refuses any that changed, appeared or disappeared: the frozen read plan (and so every key,
shard and reject name) is only valid for the files it was made from. Read tasks check their
file against it too, before and after reading their range (`check_identity`), so a file that
changes while the run reads it stops the run instead of losing rows silently.

An entry names its file by the redacted URL (`redact_url`: no userinfo, no signature or token
parameters): the manifest is written down (plan.json), and a re-signed URL is the same input.
The real URL is what the readers open; it is never written.
"""
from __future__ import annotations

import hashlib

from ..errors import InputChanged
from ..redact import redact_url
from ..storage.remote_files import identity_of, open_stream, user_errors, version_of
from .inputs import InputFile

EDGE_BYTES = 64 * 1024


def file_identity(f: InputFile) -> dict:
    """Identity of one input file, as plain data for the plan (no secret in it)."""
    return {"path": redact_url(f.path), "size": f.size, "version": version_of(f.path),
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
    """What differs between two manifests, one phrase per file (empty: nothing changed).
    Files are matched by their redacted URL (an older plan may hold a URL's secrets)."""
    before = {redact_url(e["path"]): e for e in old}
    after = {redact_url(e["path"]): e for e in new}
    changes = [f"{p} appeared" for p in after if p not in before]
    changes += [f"{p} disappeared" for p in before if p not in after]
    for path in (p for p in after if p in before):
        what = [k for k in ("size", "fingerprint", "version") if before[path][k] != after[path][k]]
        if what:
            changes.append(f"{path} changed ({', '.join(what)})")
    if not changes and list(before) != list(after):
        changes.append("the inputs are in another order")
    return changes


def check_identity(path: str, expected: dict) -> None:
    """Raise InputChanged (one line naming the file) when the file at `path` is no longer the
    one its manifest entry `expected` describes. Cheap enough for every read unit: the size and
    version (mtime locally, the store's ETag or version) from one stat / HEAD; the head and
    tail fingerprint too only where the store gives no version (size alone would pass a
    same-size rewrite). In S3 each ranged read of the unit is conditional on the ETag seen
    when the file was opened as well (s3fs sends If-Match): an object replaced mid-read fails
    that read, and the check then names the file."""
    shown = redact_url(path)
    found = identity_of(path)
    if found is None:
        raise InputChanged(f"input {shown} disappeared while the run read it; the run stopped "
                           f"(its plan is of the file as it was): use --fresh to start over",
                           shown, "disappeared")
    size, version = found
    what = [name for name, now in (("size", size), ("version", version))
            if now != expected[name]]
    if not what and not version and _fingerprint(path, size) != expected["fingerprint"]:
        what.append("fingerprint")
    if what:
        what = ", ".join(what)
        raise InputChanged(f"input {shown} changed while the run read it ({what}); the run "
                           f"stopped (its plan is of the file as it was): use --fresh to embed "
                           f"it as it is now", shown, f"changed ({what})")
