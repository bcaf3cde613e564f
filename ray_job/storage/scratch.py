"""Private scratch folders: one per user under the temp dir, created 0700.

Caches of fetched files (DuckDB inputs, results of a remote run) live here. A folder that
exists but belongs to another user, or that others can write to, is refused: a shared /tmp
must not let another local user block or hijack a run.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from ..errors import UserError


def private_dir(*parts: str) -> Path:
    """`$TMPDIR/ray-embed-<uid>/<parts...>`, each level created 0700 and checked."""
    path = Path(tempfile.gettempdir()) / f"ray-embed-{os.getuid()}"
    _ensure_private(path)
    for part in parts:
        path = path / part
        _ensure_private(path)
    return path


def _ensure_private(path: Path) -> None:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UserError(f"scratch folder {path} is not a plain directory; remove it")
    if info.st_uid != os.getuid():
        raise UserError(f"scratch folder {path} belongs to another user (uid {info.st_uid}); "
                        f"set TMPDIR to a folder of your own")
    if info.st_mode & 0o022:
        raise UserError(f"scratch folder {path} is writable by others; remove it or set TMPDIR")
