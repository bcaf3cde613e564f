"""Publish to any fsspec URL (s3://, gs://, file://, ...).

Each file goes to a temporary name and is then moved into place, so nothing half-written is
visible under its final name; a MANIFEST.json (sha256 and size of each file) is written last. A
re-run uploads only files whose checksum differs from the manifest's. Endpoints and credentials
come from the standard places (AWS_ENDPOINT_URL, the AWS_* variables, ~/.aws, ...).
"""
from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from ..storage.files import files_for
from .transfer import UploadResult, no_check, sha256_of, with_retries

MANIFEST = "MANIFEST.json"


class FsspecTarget:
    def __init__(self, destination: str, before_commit: Callable[[], None] = no_check):
        """`before_commit`: called before each file is moved into place (the run's fence)."""
        self.destination, self.before_commit = destination, before_commit
        self.files, root = files_for(destination)
        self.root = root.rstrip("/")

    def publish(self, files: dict[str, Path]) -> UploadResult:
        """Upload `files` (name in the destination -> local path) that are not there yet."""
        manifest = self._remote_manifest()
        result = UploadResult(self.destination)
        new_manifest = {}
        for name, path in files.items():
            entry = {"sha256": sha256_of(path), "size": path.stat().st_size}
            new_manifest[name] = entry
            if manifest.get(name) == entry and self._exists_with_size(name, entry["size"]):
                result.unchanged.append(name)
                continue
            self._put_atomically(path, name)
            result.uploaded.append(name)
        if result.uploaded or manifest != new_manifest:
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / MANIFEST
                local.write_text(json.dumps(new_manifest, indent=2, sort_keys=True) + "\n")
                self._put_atomically(local, MANIFEST)
        return result

    def put_shards(self, files: dict[str, Path]) -> None:
        """Shard files during a run: their names say what they hold, no manifest needed."""
        for name, path in files.items():
            self._put_atomically(path, name)

    def _remote_manifest(self) -> dict:
        try:
            return json.loads(self.files.read(f"{self.root}/{MANIFEST}"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def _exists_with_size(self, name: str, size: int) -> bool:
        try:
            return self.files.info(f"{self.root}/{name}").get("size") == size
        except FileNotFoundError:
            return False

    def _put_atomically(self, local: Path, name: str) -> None:
        target = f"{self.root}/{name}"
        parent, base = target.rsplit("/", 1)
        tmp = f"{parent}/.partial-{uuid.uuid4().hex[:12]}-{base}"
        with_retries(lambda: self.files.makedirs(parent), target)
        with_retries(lambda: self.files.put(local, tmp), target)
        try:
            self.before_commit()
        except Exception:
            self.files.remove(tmp)
            raise
        with_retries(lambda: self.files.move(tmp, target), target)
