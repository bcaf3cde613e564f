"""The benchmarks run at a tiny size, so they cannot rot."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_finalize_memory_benchmark_runs_and_prints_its_numbers():
    out = subprocess.run([sys.executable, str(BENCH / "finalize_memory.py"), "--rows", "3000",
                          "--dim", "16"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "finalize 3,000 x 16:" in out.stdout and "peak RSS" in out.stdout


@pytest.mark.slow
def test_datapath_benchmark_runs_small_and_compares_the_path_with_its_tokenizer():
    out = subprocess.run([sys.executable, str(BENCH / "datapath.py"), "--rows", "1500",
                          "--json"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result["pipeline"]["rows_embedded"] == 1500
    assert result["tokenizer"]["docs"] == 1500 and result["functions"]["docs"] == 1500
    assert result["pipeline"]["data_path_docs_per_cpu_s"] > 0
    assert result["data_path_over_tokenizer_per_cpu_s"] > 0
    assert any("Encoder" in op["operator"] for op in result["pipeline"]["operators"])


@pytest.mark.slow
def test_scale_benchmark_runs_at_2k_rows():
    out = subprocess.run([sys.executable, str(BENCH / "scale.py"), "--sizes", "2000", "--json",
                          "--max-seq-length", "32"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    (size,) = json.loads(out.stdout)["sizes"]
    assert size["rows"] == size["rows_embedded"] == 2000
    assert size["steady_docs_per_s"] > 0 and 0 < size["driver_peak_rss_mib"] < 4096
