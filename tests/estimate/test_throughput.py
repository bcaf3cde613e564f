"""Start-up apart from steady state, the data path's rate per core, and what `bench` says of
them (pure, no Ray); the tokenizer's direct Rust path gives the very ids transformers does."""
from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from ray_job.bench import bench_result, format_bench
from ray_job.encode.model.shape import ModelShape
from ray_job.throughput import data_path_rate, operator_times, steady_state


def test_steady_state_counts_the_shards_after_the_first_over_their_span():
    timeline = [(110.0, 512), (111.0, 1024), (113.0, 2048)]
    assert steady_state(timeline, started=100.0) == {
        "startup_s": 10.0, "steady_docs_per_s": 512.0, "steady_rows": 1536}


def test_one_shard_or_none_gives_no_steady_rate():
    assert steady_state([(105.0, 300)], 100.0)["steady_docs_per_s"] is None
    assert steady_state([], 100.0) == {"startup_s": None, "steady_docs_per_s": None,
                                       "steady_rows": 0}


def _stat(total):
    return SimpleNamespace(sum=total)


def _op(name, wall, cpu, rows, start=1.0, end=3.0):
    return SimpleNamespace(operator_name=name, wall_time=_stat(wall), cpu_time=_stat(cpu),
                           output_num_rows=_stat(rows), earliest_start_time=start,
                           latest_end_time=end)


def test_operator_times_lists_parents_first_and_the_data_path_leaves_out_the_encoder():
    parent = SimpleNamespace(parents=[], operators_stats=[_op("FromItems", 0.1, 0.1, 4)])
    summary = SimpleNamespace(parents=[parent], operators_stats=[
        _op("MapBatches(units_to_rows)->MapBatches(tokenize_batch)", 5.0, 3.0, 1000),
        _op("MapBatches(Encoder)", 50.0, 40.0, 1000, 2.0, 60.0),
        _op("Write", 0.5, 0.9, 4)])
    ops = operator_times(summary)
    assert [o["operator"] for o in ops][0] == "FromItems"
    assert ops[2] == {"operator": "MapBatches(Encoder)", "wall_s": 50.0, "cpu_s": 40.0,
                      "rows": 1000, "span_s": 58.0}
    rate = data_path_rate(ops, 1000)
    assert rate == {"data_path_cpu_s": 4.0, "data_path_docs_per_cpu_s": 250.0,
                    "cores_per_1000_docs_per_s": 4.0}
    assert data_path_rate([], 1000)["data_path_docs_per_cpu_s"] is None


def _report(device="cpu", pipeline=True):
    report = {"rows_embedded": 2000, "replicas": 1, "device": device, "precision": "fp32",
              "docs_per_s": 25.0, "tokens_per_s": 5000.0, "padding_efficiency": 0.98,
              "param_bytes": 4 * 10**6}
    if pipeline:
        report["pipeline"] = {"startup_s": 40.0, "steady_docs_per_s": 62.5,
                              "data_path_docs_per_cpu_s": 2000.0,
                              "cores_per_1000_docs_per_s": 0.5}
    return report


def test_bench_projects_from_the_steady_rate_with_start_up_once():
    result = bench_result(_report(), 2000, 2_700_000)
    assert result["projected_hours"] == pytest.approx((40 + 2_700_000 / 62.5) / 3600)
    assert result["cores_per_replica"] is None           # no GPU rate measured or assumed
    text = format_bench(result)
    assert "62.5 docs/s steady state; 25.0 docs/s over the whole run" in text
    assert "start-up           40.0 s" in text
    assert "0.50 cores per 1,000 docs/s" in text and "--gpu-docs-per-s" in text
    assert "12.0 h for 2,700,000 papers (steady state rate, start-up once)" in text


def test_bench_sizes_cpus_for_an_assumed_or_a_measured_gpu_replica():
    assumed = bench_result(_report(), 2000, 10**6, gpu_docs_per_s=3000)
    assert assumed["cores_per_replica"] == 1.5 and assumed["replica_rate_from"] == "assumed"
    assert "1.5 to feed one replica at 3,000 docs/s (assumed)" in format_bench(assumed)
    shape = ModelShape(6, 384, 1536, 12)
    measured = bench_result(_report("cuda"), 2000, 10**6, gpu_docs_per_s=99, peak_tflops=100.0,
                            shape=shape)
    assert measured["replica_docs_per_s"] == 62.5 and measured["replica_rate_from"] == "measured"
    # MFU from the steady rate: 62.5 docs/s of 200 real tokens each at padding 0.98
    assert measured["flops_per_doc"] == pytest.approx(shape.flops_per_doc(200.0, 0.98))
    assert measured["mfu"] == pytest.approx(62.5 * shape.flops_per_doc(200.0, 0.98) / 100e12)
    assert bench_result(_report("cuda"), 2000, 10**6, peak_tflops=100.0)["mfu"] is None


def test_bench_without_a_steady_rate_says_the_rate_includes_start_up():
    result = bench_result(_report(pipeline=False), 300, 10**6)
    assert result["projected_hours"] == pytest.approx(10**6 / 25.0 / 3600)
    assert "too few shards for a steady-state rate" in format_bench(result)


def test_the_rust_path_gives_the_ids_transformers_gives(sample_records):
    from ray_job.encode.model.loading import bundled_model_path
    from ray_job.encode.tokenize import encode_texts, load_tokenizer, rust_backend

    tok = load_tokenizer(str(bundled_model_path()))
    texts = [r["title"] + "[SEP]" + r["abstract"] for r in sample_records[:200]] + [
        "", " ", "[CLS] a [SEP] b", "é" * 3000]
    for max_length in (8, 256):
        assert rust_backend(tok, max_length) is not None
        expected = tok(texts, truncation="longest_first", max_length=max_length,
                       return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        assert encode_texts(tok, texts, max_length) == expected


def test_driver_memory_samples_the_current_rss_not_the_peak(tmp_path):
    from ray_job.driver_memory import DriverMemory, current_rss_mib

    now = current_rss_mib()
    assert now is not None and 10 < now < 65536
    assert current_rss_mib(str(tmp_path / "no-proc")) is None
    readings = iter([600.0, None, 640.5, 610.0])
    memory = DriverMemory(interval=60, read=lambda: next(readings))
    assert memory.summary() == {}
    for _ in range(4):
        memory.tick()
    assert memory.summary() == {"first": 600.0, "last": 610.0, "max": 640.5, "samples": 3}


THREADS_PROBE = r"""
import json, os, sys
from tokenizers import Tokenizer
from ray_job.encode.tokenize import cap_rust_threads
texts = [json.loads(l)["abstract"] for l in open(sys.argv[1])][:400] * 5
tokenizer = Tokenizer.from_file(sys.argv[3])
before = len(os.listdir("/proc/self/task"))
cap_rust_threads(int(sys.argv[2]) if sys.argv[2] != "none" else None)   # as tokenize_batch does
assert len(tokenizer.encode_batch(texts)) == len(texts)
print(len(os.listdir("/proc/self/task")) - before, os.environ.get("RAYON_NUM_THREADS"))
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task") or len(os.sched_getaffinity(0)) < 2,
                    reason="counts threads in /proc; needs 2+ cores to tell 1 from the default")
def test_a_tokenize_task_starts_as_many_rust_threads_as_the_cpus_it_holds(sample_path):
    from ray_job.encode.model.loading import bundled_model_path

    env = {k: v for k, v in os.environ.items() if k not in ("RAYON_NUM_THREADS",
                                                            "TOKENIZERS_PARALLELISM")}

    def started(threads: str, **extra) -> tuple[int, str]:
        """Threads the process gained tokenizing 2,000 abstracts, and RAYON_NUM_THREADS."""
        out = subprocess.run([sys.executable, "-c", THREADS_PROBE, str(sample_path), threads,
                              os.path.join(bundled_model_path(), "tokenizer.json")],
                             capture_output=True, text=True, check=True, env={**env, **extra})
        grown, var = out.stdout.split()
        return int(grown), var

    one, var = started("1")                      # the task holds one CPU
    assert var == "1"
    default, var = started("none")               # left alone: one Rust thread per core
    assert var == "None" and default > one          # (how many: the cores rayon sees)
    assert started("1", RAYON_NUM_THREADS="2") == (one + 1, "2")     # set by hand: kept
