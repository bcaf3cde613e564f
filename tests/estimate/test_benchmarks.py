"""The benchmarks run at a tiny size, so they cannot rot."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def test_finalize_memory_benchmark_runs_and_prints_its_numbers():
    out = subprocess.run([sys.executable, str(BENCH / "finalize_memory.py"), "--rows", "3000",
                          "--dim", "16", "--quality"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "finalize (plain) 3,000 x 16:" in out.stdout and "peak RSS" in out.stdout
    assert "finalize (quality) 3,000 x 16:" in out.stdout
    assert "quality pass: +" in out.stdout and "of finalize)" in out.stdout


def test_datapath_measures_in_process_at_a_tiny_size(local_ray, tmp_path):
    """Their measuring code, on the session's Ray (the scripts as commands: the slow tests
    below): a change to the pipeline's API or report breaks this, not just the scripts."""
    sys.path.insert(0, str(BENCH))
    import datapath

    result = datapath.measure(300, tmp_path)
    assert result["pipeline"]["rows_embedded"] == 300 and result["tokenizer"]["docs"] == 300
    assert result["data_path_over_tokenizer_per_cpu_s"] > 0
    assert "| tokenizer alone" in datapath.format_table(result)


# slow: a whole run in a child process (~20 s); the pipeline's report it reads is in the default
# suite's end-to-end tests
@pytest.mark.slow
def test_scale_measures_a_child_run_at_a_tiny_size(tmp_path):
    sys.path.insert(0, str(BENCH))
    import datapath
    import scale
    from tiny_models import tiny_bert

    corpus = datapath.write_corpus(200, tmp_path / "scale.jsonl")
    size = scale.child(corpus, tiny_bert(tmp_path / "tiny-bert"), tmp_path / "scale-out", 16)
    assert size["rows_embedded"] == 200 and size["whole_docs_per_s"] > 0
    assert 0 < size["driver_peak_rss_mib"] < 8192
    rss = size["encode_rss_mib"]             # the driver's own samples through the encode phase
    assert 0 < rss["first"] <= rss["max"] <= size["driver_peak_rss_mib"] + 1  # ru_maxrss: KiB
    assert rss["samples"] >= 1
    table = scale.format_table({"cpu": "cpu", "cores": 2, "max_seq_length": 16,
                                "sizes": [{"rows": 200, **size}]})
    assert "| 200 | 200 |" in table and "truncated to 16 tokens" in table
    assert f"| {rss['first']} -> {rss['last']} |" in table


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


def test_worker_startup_measures_a_tokenize_task_that_imports_neither_torch_nor_transformers():
    """The benchmark's measuring code, on its cheapest case (the replica cases take seconds
    each: run the script for them)."""
    sys.path.insert(0, str(BENCH))
    import worker_startup

    result = worker_startup.measure(["recipe"], 1)
    recipe = result["cases"]["recipe"]
    assert recipe["imported"] == [] and 0 < recipe["rss_added_mib"] < 100
    assert "| recipe |" in worker_startup.format_table(result)


def test_cpu_shares_counts_the_runs_own_process_tree_by_kind():
    """cpu_shares.py's pure parts (the script itself runs a whole command: run it by hand)."""
    sys.path.insert(0, str(BENCH))
    import cpu_shares

    procs = {10: (1, 100, "python -m ray_job run --input x"), 11: (10, 50, "raylet --x"),
             12: (11, 900, "ray::MapWorker(MapBatches(Encoder))"), 13: (1, 999, "raylet --y"),
             14: (11, 30, "ray::IDLE"), 15: (12, 5, "ray::_StatsActor")}
    members = cpu_shares.tree(procs, 10)
    assert members == {10, 11, 12, 14, 15}                  # another user's raylet left out
    got = cpu_shares.shares({pid: (cpu_shares.kind_of(procs[pid][2]), procs[pid][1])
                             for pid in members})
    hz = cpu_shares.HZ
    assert list(got)[0] == "replica" and got["replica"]["cpu_s"] == round(900 / hz, 2)
    assert {"driver", "raylet", "idle workers", "Ray Data helper actors"} <= set(got)


# slow: the five steps at 1,200 rows (~25 s); the map and every export in the default suite:
# test_map, test_compact_vectors, test_exports
@pytest.mark.slow
def test_map_exports_benchmark_makes_a_run_and_measures_every_step(tmp_path):
    """Its run-making and measuring code at 1,200 rows, in this process (the script runs
    each step in a child of its own for the peak memory: that is the 2.7M-row command)."""
    sys.path.insert(0, str(BENCH))
    import map_exports

    result = map_exports.measure(1200, 32, 200, tmp_path, truncate_dim=16, children=False)
    steps = {s["step"]: s for s in result["steps"]}
    assert list(steps) == ["map", "int8", "binary", "lance", "parquet"]
    assert steps["map"]["labels"] == "categories" and steps["map"]["sample"] == 200
    assert all(s["seconds"] >= 0 and s["bytes"] > 0 for s in steps.values())
    assert steps["binary"]["bytes"] < steps["int8"]["bytes"] < steps["parquet"]["bytes"]
    assert "| map |" in map_exports.format_table(result) and not list(tmp_path.iterdir())


def test_throughput_rates_and_ratios_at_a_tiny_size(sample_records):
    """Its in-process measuring and the ratios it prints, on 8 papers (the peer script and the
    commands: the slow tests below)."""
    sys.path.insert(0, str(BENCH))
    import throughput

    from ray_job.encode.model.precision import cpu_has_native_bf16

    rates = throughput.in_process(throughput.texts_of(sample_records[:8]))
    expected = {"notebook", "st fp32"} | ({"st bf16", "st bf16-weights"}
                                          if cpu_has_native_bf16() else set())
    assert set(rates) == expected and all(r > 0 for r in rates.values())
    rows = {**{k: {"docs_per_s": v, "kind": "in-process"} for k, v in rates.items()},
            "peer": {"docs_per_s": 10.0, "wall_s": 2.4, "kind": "peer"},
            "ours": {"docs_per_s": 20.0, "wall_s": 1.2, "kind": "ours"},
            "marginal": {"docs_per_s": max(rates.values()), "kind": "ours-marginal"}}
    result = {"machine": throughput.machine(), "docs": 24, "rows": rows,
              "ratios": throughput.ratios(rows)}
    assert result["ratios"]["vs_best_peer"] == pytest.approx(2.0)
    assert result["ratios"]["marginal_vs_best_in_process"] == pytest.approx(1.0)
    text = throughput.format_table(result)
    assert "ray-embed / best peer (peer): 2.00x" in text and "| notebook |" in text


@pytest.mark.slow     # a Ray Data job of its own; the peer's numbers: the benchmark's own run
def test_the_peer_script_embeds_every_paper(local_ray, tmp_path, sample_records):
    import pyarrow.parquet as pq

    sys.path.insert(0, str(BENCH))
    import peer_ray_data
    import throughput

    from ray_job.encode.model.loading import bundled_model_path

    corpus = throughput.scaled_corpus(sample_records[:12], 2, tmp_path / "corpus.jsonl")
    seconds = peer_ray_data.embed_with_ray_data(str(corpus), str(tmp_path / "peer"),
                                                bundled_model_path(), threads=1)
    table = pq.read_table(tmp_path / "peer")
    assert seconds > 0 and table.num_rows == 24
    assert table.column("embedding").combine_chunks().to_numpy_ndarray().shape == (24, 384)


@pytest.mark.slow     # whole commands (each starts its own Ray): its arithmetic runs above
def test_the_throughput_benchmark_runs_small(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH / "throughput.py"), "--scales", "1",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "throughput.json").read_text())
    assert result["ratios"]["vs_best_peer"] > 0 and "ray-embed / best peer" in out.stdout
