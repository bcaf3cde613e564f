"""benchmarks/dedup.py runs, tiny, so that it cannot rot: it finds the planted pairs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_dedup_benchmark_runs_tiny(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "dedup.py"), "--rows", "3000",
                          "--dim", "32", "--workdir", str(tmp_path)],
                         capture_output=True, text=True, check=True, timeout=300)
    result = json.loads(out.stdout)
    assert result["rows"] == 3000 and result["planted"] > 0
    assert result["recall"] >= 0.8 and result["pairs"] >= result["planted"] * 0.8
    assert result["peak_rss_mib"] > 0
