"""`ray-embed plan`: the corpus and its tokens measured on a sample, the rate from the GPU
check's results when there are some (else a labelled estimate), and the projection."""
from __future__ import annotations

import json

import pytest

from ray_job.bench import bench_result, model_shape
from ray_job.cli import main
from ray_job.config import JobConfig
from ray_job.encode.model.defaults import MFU
from ray_job.encode.model.shape import ModelShape
from ray_job.estimate.projection import make_plan
from ray_job.estimate.rates import gpu_rate


def plan(sample_path, **kw):
    cfg = JobConfig.of(inputs=(str(sample_path),))
    args = {"gpus": 4, "gpu_type": "H100", "price": 2.0, "cpus_per_gpu": None,
            "sample_docs": 200, "docs": None, "results_path": None, **kw}
    return make_plan(cfg, **args)


def test_a_plan_without_gpu_results_says_its_rate_is_an_estimate(sample_path, tmp_path):
    p = plan(sample_path, results_path=tmp_path / "none.json")
    assert p["corpus"]["rows_how"] == "estimated" and 900 < p["corpus"]["rows"] < 1100
    assert p["corpus"]["sample_rows"] == 200 and 100 < p["corpus"]["tokens_per_doc"] < 256
    assert p["rate"]["how"] == "estimated" and "ASSUMED" in p["rate"]["detail"]
    assert p["gpu_hours"] == pytest.approx(4 * p["wall_s"] / 3600, abs=1e-3)
    assert p["cost"] == pytest.approx(p["gpu_hours"] * 2.0, abs=0.01)
    assert p["cpus_per_gpu_needed"] >= 2 and p["defaults"]["precision"] == "fp16"


def test_too_few_cpus_per_gpu_limit_the_rate_to_what_the_data_path_feeds(sample_path, tmp_path):
    free = plan(sample_path, results_path=tmp_path / "none.json", docs=1_000_000)
    tight = plan(sample_path, results_path=tmp_path / "none.json", docs=1_000_000,
                 cpus_per_gpu=2.0)
    assert free["limited_by"] is None and tight["limited_by"].startswith("the data path")
    assert tight["docs_per_s_per_gpu"] < free["docs_per_s_per_gpu"]
    assert tight["wall_s"] > free["wall_s"] and free["corpus"]["rows_how"] == "given"


def test_the_gpu_checks_mfu_gives_the_rate_for_the_same_shape_and_projects_others(tmp_path):
    minilm = ModelShape(6, 384, 1536, 12)
    results = {"device_name": "NVIDIA H200", "models": {
        "minilm": {"layers": 6, "hidden": 384, "intermediate": 1536, "heads": 12, "max_len": 256}},
        "rows": [{"step": "speed", "model": "minilm", "variant": "fp16",
                  "achieved_tflops": 197.8}]}
    same = gpu_rate(minilm, 256, 176.0, 0.97, "H100", "fp16", results)
    flops = minilm.flops_per_doc(176.0, 0.97)
    assert same.how == "measured MFU"
    assert same.docs_per_s == pytest.approx(989e12 * (197.8 / 989.0) / flops)
    other = gpu_rate(ModelShape(12, 768, 3072, 12), 512, 230.0, 0.97, "L4", "fp16", results)
    assert other.how == "projected" and "scaled to L4" in other.detail
    assert gpu_rate(minilm, 256, 176.0, 0.97, "H100", "bf16", results).how == "estimated"
    guess = gpu_rate(minilm, 256, 176.0, 0.97, "H100", "fp16", None)
    assert guess.docs_per_s == pytest.approx(989e12 * MFU / flops)


def test_bench_and_plan_count_the_same_flops_per_doc(sample_path, tmp_path):
    """One FLOP model: a bench run that embedded the plan's sample (its tokens a doc, its
    padding) reports the FLOPs a doc the plan's rate is made from, so both MFUs share a basis."""
    p = plan(sample_path, results_path=tmp_path / "none.json")
    cfg = JobConfig.of(inputs=(str(sample_path),))
    tokens, padding = p["corpus"]["tokens_per_doc"], p["padding_efficiency"]
    report = {"rows_embedded": 200, "replicas": 1, "device": "cuda", "precision": "fp16",
              "docs_per_s": 100.0, "tokens_per_s": 100.0 * tokens, "padding_efficiency": padding,
              "param_bytes": 4 * p["params"]}
    ran = bench_result(report, 200, 10**6, peak_tflops=989.0, shape=model_shape(cfg))
    assert ran["flops_per_doc"] == pytest.approx(p["flops_per_doc"], rel=1e-3)
    assert ran["mfu"] == pytest.approx(100.0 * p["flops_per_doc"] / 989e12, rel=1e-3)
    assert 3e9 < p["flops_per_doc"] < 6e9        # MiniLM-L6: ~21 MFLOP a token, ~176 tokens


def test_plan_on_the_command_line(sample_path, capsys, tmp_path):
    assert main(["plan", "--input", str(sample_path), "--gpus", "2", "--gpu-type", "L4",
                 "--sample-docs", "50", "--docs", "2700000", "--json",
                 "--gpu-results", str(tmp_path / "none.json")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["corpus"]["rows"] == 2_700_000 and printed["gpu_type"] == "L4"
    assert main(["plan", "--gpus", "1"]) == 2
    assert "plan needs --input" in capsys.readouterr().err
    assert main(["plan", "--input", str(sample_path), "--gpus", "1", "--gpu-type", "B99"]) == 2
    assert "unknown --gpu-type" in capsys.readouterr().err


def test_a_cpu_plan_measures_the_replica_here(sample_path, tmp_path):
    p = plan(sample_path, gpus=0, sample_docs=48, docs=10_000)
    assert p["rate"]["how"] == "measured on this CPU" and p["rate"]["docs_per_s"] > 0
    assert p["gpu_hours"] is None and p["cpus_per_gpu_needed"] is None
    assert p["wall_s"] == pytest.approx(20 + 10_000 / p["rate"]["docs_per_s"], rel=0.05)


def test_the_gpu_rates_load_from_the_installed_package_not_the_source_tree(tmp_path):
    """The shipped rates are package data: a copy of ray_job alone, away from this checkout's
    benchmarks/, finds them beside its own modules."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import ray_job
    from ray_job.estimate.rates import load_results, packaged_rates_path

    package = Path(ray_job.__file__).parent
    assert packaged_rates_path() == package / "estimate" / "gpu_rates.json"
    assert load_results(None) == json.loads(packaged_rates_path().read_text())
    package_data = (package.parent / "pyproject.toml").read_text().split(
        "[tool.setuptools.package-data]")[1]
    assert 'ray_job = ["estimate/gpu_rates.json"]' in package_data
    site = tmp_path / "site"
    shutil.copytree(package, site / "ray_job", ignore=shutil.ignore_patterns("__pycache__"))
    code = ("from ray_job.estimate.rates import load_results, packaged_rates_path; "
            "print(packaged_rates_path()); print(load_results(None) is not None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path, env={"PYTHONPATH": str(site)})
    path, loaded = out.stdout.split()
    assert Path(path) == site / "ray_job" / "estimate" / "gpu_rates.json" and loaded == "True"
