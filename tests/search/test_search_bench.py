"""benchmarks/search.py runs end to end at a tiny size, so it cannot rot."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_search_benchmark_runs_tiny(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("search_bench", ROOT / "benchmarks" / "search.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr("ray_job.search.ann.FLAT_BELOW", 1000)     # the IVF path at 5,000 rows
    out = tmp_path / "search.json"
    bench.main(["--rows", "5000", "--dims", "32", "--queries", "10", "--nprobe", "4", "16",
                "--workdir", str(tmp_path), "--out", str(out)])
    (run,) = json.loads(out.read_text())["runs"]
    assert run["rows"] == 5000 and run["factory"].startswith("IVF") and run["index_bytes"] > 0
    assert [r["nprobe"] for r in run["by_nprobe"]] == [4, 16]
    assert all(0 <= r["recall_at_k"] <= 1 and r["latency_ms_p50"] > 0 for r in run["by_nprobe"])
    low, high = (r["recall_at_k"] for r in run["by_nprobe"])
    assert high >= low and high > 0.5         # more lists probed, more found (tiny: not the goal)
    # the compact indexes: int8 and binary codes, all dims and half, rescored exactly
    kinds = [(c["vectors"], c["truncate_dim"]) for c in run["compact"]]
    assert kinds == [("int8", 0), ("binary", 0), ("int8", 16), ("binary", 16)]
    sizes = {kind: c["code_bytes_per_row"] for kind, c in zip(kinds, run["compact"], strict=True)}
    assert sizes[("int8", 0)] == 32 and sizes[("binary", 0)] == 4 and sizes[("int8", 16)] == 16
    for c in run["compact"]:
        assert c["recall_at_k"] >= c["recall_at_k_index_only"] and c["latency_ms_p50"] > 0
    assert run["compact"][0]["recall_at_k"] > 0.9             # int8, rescored
