"""The benchmarks run at a tiny size, so they cannot rot."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_finalize_memory_benchmark_runs_and_prints_its_numbers():
    out = subprocess.run([sys.executable, str(BENCH / "finalize_memory.py"), "--rows", "3000",
                          "--dim", "16"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "finalize 3,000 x 16:" in out.stdout and "peak RSS" in out.stdout
