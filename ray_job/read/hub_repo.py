"""`hf://datasets/OWNER/NAME` (a whole dataset repo, optionally `@REVISION`): the data files of
one split, the way the Hub lays datasets out.

Every Parquet / JSONL file anywhere in the repo is a candidate. When their paths name splits
(`data/train-00000-of-00004.parquet`, `train/part-0.jsonl`, `test.jsonl`: the split's name
between separators, as the Hub's own data-file patterns read them), the files of SPLIT are
taken (`train`, the split a dataset loads by default); with no split in any name, all of
them. Another split: name its files, e.g. `hf://datasets/OWNER/NAME/data/test-*.parquet`.
"""
from __future__ import annotations

import re

REPO_ROOT = re.compile(r"^hf://datasets/[^/@]+/[^/@]+(@[^/]+)?/?$")
SPLITS = ("train", "validation", "valid", "dev", "test", "eval")
SPLIT = "train"


def is_repo_root(url: str) -> bool:
    return REPO_ROOT.match(url) is not None


def _split_pattern(split: str) -> re.Pattern:
    return re.compile(rf"(^|[/\-._ 0-9]){split}($|[/\-._ 0-9])")


def split_files(repo_url: str, urls: list[str], split: str = SPLIT) -> list[str]:
    """The URLs of `split`'s files, or all of them when no path names a split."""
    root = repo_url.rstrip("/")
    relative = {u: u[len(root):].lstrip("/") for u in urls}
    named = {s: [u for u, rel in relative.items() if _split_pattern(s).search(rel)]
             for s in SPLITS}
    if not any(named.values()):
        return urls
    return named.get(split, [])
