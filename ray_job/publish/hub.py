"""Publish to a Hugging Face Hub dataset repo: hf://datasets/OWNER/NAME[/path].

huggingface_hub does the transfer: the repo is created if needed, and every file that is new or
changed goes into ONE commit (the Hub applies a commit whole, so nothing partial is ever
visible); large files take the client's LFS path. Files whose Hub checksum (LFS sha256, or git
blob id for small files) already equals the local one are not sent again. The client retries
its LFS transfers itself but posts a commit only once, so the commit is retried here; a retry
first asks the Hub again what is missing, so a commit that landed but whose answer was lost is
not made twice. The endpoint and token come from the standard places (HF_ENDPOINT, HF_TOKEN or
the huggingface_hub login); the token is never written anywhere by ray-embed.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from ..errors import UserError
from .transfer import UploadResult, git_blob_sha1, no_check, sha256_of, with_retries

HUB_URL = re.compile(r"^hf://datasets/(?P<repo>[\w.-]+/[\w.-]+)(?:/(?P<path>.*))?$")


def parse_hub_url(destination: str) -> tuple[str, str]:
    match = HUB_URL.match(destination.rstrip("/"))
    if not match:
        raise UserError(f"bad Hub destination {destination!r}: expected "
                        f"hf://datasets/OWNER/NAME[/path]")
    return match.group("repo"), (match.group("path") or "").strip("/")


class HubTarget:
    def __init__(self, destination: str, before_commit: Callable[[], None] = no_check):
        """`before_commit`: called before each commit (the run's fence)."""
        from huggingface_hub import HfApi

        self.destination, self.before_commit = destination, before_commit
        self.repo_id, self.prefix = parse_hub_url(destination)
        self.api = HfApi()
        self.checksums: dict[tuple, str] = {}

    def publish(self, files: dict[str, Path], message: str = "ray-embed: publish embeddings"
                ) -> UploadResult:
        with_retries(lambda: self.api.create_repo(self.repo_id, repo_type="dataset",
                                                  exist_ok=True),
                     f"{self.destination} (create repo)")
        changed = with_retries(lambda: self._changed(files), self.destination)
        if changed:
            with_retries(lambda: self._commit_missing(files, message), self.destination)
        return UploadResult(self.destination, uploaded=sorted(changed),
                            unchanged=sorted(set(files) - set(changed)))

    def put_shards(self, files: dict[str, Path]) -> None:
        self.publish(files, message=f"ray-embed: {len(files)} shard file(s)")

    def _commit_missing(self, files: dict[str, Path], message: str) -> None:
        """One commit of what the Hub still lacks (asked again on every attempt)."""
        from huggingface_hub import CommitOperationAdd

        missing = self._changed(files)
        if missing:
            self.before_commit()
            operations = [CommitOperationAdd(self._in_repo(name), str(files[name]))
                          for name in missing]
            self.api.create_commit(self.repo_id, operations, commit_message=message,
                                   repo_type="dataset")

    def _changed(self, files: dict[str, Path]) -> list[str]:
        """Names whose content on the Hub differs from the local file (or is missing)."""
        remote = {info.path: info for info in self.api.get_paths_info(
            self.repo_id, [self._in_repo(n) for n in files], repo_type="dataset")}
        return [name for name, path in files.items()
                if not self._same_content(remote.get(self._in_repo(name)), path)]

    def _same_content(self, remote, path: Path) -> bool:
        if remote is None or getattr(remote, "size", None) != path.stat().st_size:
            return False
        lfs = getattr(remote, "lfs", None)
        if lfs is not None:
            return lfs.sha256 == self._checksum(sha256_of, path)
        return remote.blob_id == self._checksum(git_blob_sha1, path)

    def _checksum(self, algorithm, path: Path) -> str:
        """Each file is hashed once per publish (a retry asks the Hub again, not the disk)."""
        key = (algorithm.__name__, str(path), path.stat().st_mtime_ns)
        if key not in self.checksums:
            self.checksums[key] = algorithm(path)
        return self.checksums[key]

    def _in_repo(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name
