"""The product's two test hooks, and the one switch that turns them on.

`RAY_EMBED_TEST_HOOKS` (unset in production) is `FOLDER:ARGUMENT`: FOLDER is a Python package
outside ray_job (the tests' fault kit), loaded from its path; its `install(ARGUMENT)` returns
the hooks object. The product asks it at exactly two points:

- `before_storage(kind, op, path)`: the storage door (storage/files.py), before every
  operation and before each read of a streamed file; it may raise the OSError a real store
  would, or sleep;
- `before_batch(calls)`: a model replica (encode/replica_actor.py), before each batch; it may
  end the process, as when a node dies.

The driver forwards the switch to its Ray workers through `runtime_env` (`worker_env_vars`),
so a replica on a cluster it connected to sees the same hooks as the driver.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

HOOKS_ENV = "RAY_EMBED_TEST_HOOKS"

_installed: dict[str, object] = {}      # switch value -> its hooks object (one per process)


def installed():
    """The hooks object the switch names, or None (production)."""
    value = os.environ.get(HOOKS_ENV)
    if not value:
        return None
    if value not in _installed:
        folder, _, argument = value.partition(":")
        _installed[value] = _load_package(Path(folder)).install(argument)
    return _installed[value]


def before_storage(kind: str, op: str, path: str) -> None:
    hooks = installed()
    if hooks is not None:
        hooks.before_storage(kind, op, path)


def before_batch(calls: int) -> None:
    hooks = installed()
    if hooks is not None:
        hooks.before_batch(calls)


def worker_env_vars() -> dict[str, str]:
    """What a Ray worker's environment must hold for the hooks to follow (empty: none)."""
    value = os.environ.get(HOOKS_ENV)
    return {HOOKS_ENV: value} if value else {}


def _load_package(folder: Path):
    """The package at `folder`, imported under its folder's name (the one already imported,
    if any: a test process imports the kit itself)."""
    name = folder.name
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
