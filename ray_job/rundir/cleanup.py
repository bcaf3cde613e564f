"""Destructive actions touch only what ray-embed made (`--fresh`), and only in a run directory.

A folder is a run directory when it holds a job.json that ray-embed wrote (one with a config
hash), or when it holds nothing but what a driver makes before its job.json (the lease, the
demo corpus: `layout.EARLY`). Anything else is a user's folder: clearing it is refused in one
line and nothing is deleted. In a run directory only the names `layout.OWNED` declares are
removed, folder by folder, and the dataset card only when it is ray-embed's own; a user's file
beside them (README.md, parquet/2025.parquet, index/notes.txt) stays, and so does a folder
that still holds one. The same on local disks and in object stores (a Store).
"""
from __future__ import annotations

import json

from ..errors import UserError
from ..storage.store import Store
from . import layout

SHOWN = 3


def check_output(store: Store, fresh: bool) -> None:
    """Before a run touches anything: `--output` is a folder, and `--fresh` only discards a
    run directory."""
    check_output_location(store)
    if fresh:
        check_clearable(store)


def check_output_location(store: Store) -> None:
    """`--output` must be a folder (or nothing yet): an existing file is one line."""
    if store.is_local:
        path = store.local_path
        for above in (path, *path.parents):
            if above.exists():
                if not above.is_dir():
                    raise UserError(f"--output {path}: {above} is a file, not a folder; give a "
                                    f"folder (new or a run directory)")
                return
        return
    if store.is_file():
        raise UserError(f"--output {store.url} is an object, not a folder; give a prefix "
                        f"(new or a run directory)")


def check_clearable(store: Store) -> None:
    """Refuse (one line, nothing touched) to clear a folder that is not a run directory."""
    if is_run_directory(store):
        return
    foreign = foreign_names(store)
    if foreign:
        shown = ", ".join(foreign[:SHOWN]) + (f" and {len(foreign) - SHOWN} more"
                                              if len(foreign) > SHOWN else "")
        raise UserError(f"--fresh: {store.url} is not a run directory (no {layout.JOB}; it "
                        f"holds {shown}); nothing was deleted. Give --output a run directory "
                        f"or a new folder")


def is_run_directory(store: Store) -> bool:
    """A job.json that ray-embed wrote (a JSON object with a config hash) is there."""
    if not store.exists(layout.JOB):
        return False
    try:
        job = json.loads(store.read_text(layout.JOB))
    except ValueError:
        return False
    return isinstance(job, dict) and "config_hash" in job


def foreign_names(store: Store) -> list[str]:
    """What a folder without a job.json holds beyond what a driver makes before one."""
    found = []
    for name, is_dir in store.entries():
        if is_dir and name in layout.EARLY and name:
            found += [f"{name}/{n}" for n, sub_dir in store.sub(name).entries()
                      if sub_dir or not layout.owned(name, n, layout.EARLY)]
        elif is_dir or not layout.owned("", name, layout.EARLY):
            found.append(name + ("/" if is_dir else ""))
    return sorted(found)


def clear_run(store: Store) -> None:
    """Remove what ray-embed made in the run directory `store` (checked first): the names
    `layout.OWNED` declares, the trees `layout.OWNED_TREES` names, and its own dataset card;
    then the declared folders left empty."""
    check_clearable(store)
    for folder in layout.OWNED:
        sub = store.sub(folder) if folder else store
        for name in sub.names():
            if layout.owned(folder, name):
                sub.remove(name)
    for tree in layout.OWNED_TREES:
        store.sub(tree).remove_tree()
    if store.exists(layout.CARD) and _is_our_card(store):
        store.remove(layout.CARD)
    if store.is_local:
        owned = [f for f in layout.OWNED if f] + [t.rsplit("/", 1)[0] for t in layout.OWNED_TREES]
        for folder in sorted(owned, key=len, reverse=True):
            _remove_if_empty(store.local_path / folder)


def _is_our_card(store: Store) -> bool:
    return store.read_bytes(layout.CARD).startswith(layout.CARD_HEAD.encode())


def _remove_if_empty(path) -> None:
    try:
        path.rmdir()
    except OSError:              # not there, or a user's file still in it
        pass
