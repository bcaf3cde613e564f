"""Ray's benign C++ line about actor constructor arguments never reaches the user; every other
line written to fd 2 (C++ errors included, and the progress line without a newline) does."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = r'''
import os, sys
from ray_job.session.stderr_filter import drop_benign_lines
with drop_benign_lines():
    os.write(2, b"[2026-11-22 18:37:54,086 E 1 1] core_worker.cc:2465: Actor with class name: "
                b"'MapWorker(MapBatches(Encoder))' and ID: 'x' has constructor arguments in the "
                b"object store and max_restarts > 0. If the arguments ...\n")
    os.write(2, b"[2026-11-22 18:37:55,000 E 1 1] raylet_client.cc:1: a real error\n")
    sys.stderr.write("\rembedded 10/20 rows (50%)")
    sys.stderr.flush()
    os.write(2, b"\nplain [text] line\n[unfinished")
print("done")
'''


def test_only_the_benign_line_is_dropped():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"done\n"
    assert result.stderr == (b"[2026-11-22 18:37:55,000 E 1 1] raylet_client.cc:1: a real error\n"
                             b"\rembedded 10/20 rows (50%)\nplain [text] line\n[unfinished")
