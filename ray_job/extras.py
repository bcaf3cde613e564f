"""The optional extras (`pip install 'ray_job[map,explore,lance]'`): what each feature
imports, checked before a run starts (a missing one is one line, not a traceback after the
encode)."""
from __future__ import annotations

import importlib
import importlib.util

from .errors import UserError

NEEDS = {"map": ("umap", "datamapplot"), "explore": ("embedding_atlas", "uvicorn"),
         "lance": ("lancedb",)}


def check_extra(extra: str) -> None:
    missing = [m for m in NEEDS[extra] if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"{extra} needs {', '.join(missing)}: pip install 'ray_job[{extra}]'")


def require(module: str, extra: str):
    """The module, imported; a one-line UserError naming the extra when it is missing."""
    check_extra(extra)
    return importlib.import_module(module)


def check_run_extras(options) -> None:
    """The extras a run's options will use (--map, --export lance)."""
    if options.map:
        check_extra("map")
    if "lance" in options.exports:
        check_extra("lance")
