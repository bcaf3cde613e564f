"""The replica-feeding benchmark runs at a tiny size, so it cannot rot."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "encoder_feed.py"


@pytest.mark.slow
def test_encoder_feed_benchmark_runs_and_prints_its_numbers():
    out = subprocess.run([sys.executable, str(BENCH), "--docs", "12", "--pad-number", "2",
                          "--precisions", "fp32", "bf16-weights"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = out.stdout.split("summary:")[1]
    for mode in ("before", "fp32", "bf16-weights"):
        assert f"encoder {mode:>13}:" in summary
    assert "min cos vs fp32 1.0" in summary and "pad_rows 256 x" in summary
