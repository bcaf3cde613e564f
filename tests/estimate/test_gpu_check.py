"""The GPU check (benchmarks/gpu_check.py) cannot rot: its dry run (tiny models, CPU) runs every
step here, in a process that refuses to import Ray and `adapters` (the GPU machine has
neither); the fp16 MiniLM it carries comes back as the bundled model; its pure parts are right."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

def dry_run(folder: Path, *only: str) -> tuple[dict, str]:
    """(the dry run's results, its stdout); `only`: these steps (and the two every run
    takes), else every step."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"),
                          "--dry-run", "--out", str(folder),
                          *(("--only", *only) if only else ())],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads((folder / "gpu_check-dry-run.json").read_text()), out.stdout


def test_the_dry_run_of_a_few_steps_writes_their_results(tmp_path):
    """The default run's cover (the whole dry run is the slow test below): a speed step, the
    OOM back-off and the data path, in a process refusing Ray."""
    result, _ = dry_run(tmp_path, "speed:minilm", "oom_backoff", "data_path")
    assert {k for k, v in result["steps"].items() if v["status"] != "ok"} == set()
    assert set(result["steps"]) == {"environment", "prepare", "speed:minilm", "oom_backoff",
                                    "data_path"}
    speed = [r for r in result["rows"] if r["step"] == "speed"]
    assert [r["variant"] for r in speed] == ["fp32", "fp16", "fp16-weights", "bf16",
                                             "bf16-weights"]
    (oom,) = [r for r in result["rows"] if r["step"] == "oom_backoff"]
    assert oom["calls"][0]["out_of_memory_errors"] > 0
    assert result["imported_forbidden"] == []


@pytest.mark.slow
def test_the_dry_run_runs_every_step_and_writes_its_results(tmp_path):
    result, stdout = dry_run(tmp_path)
    steps = result["steps"]
    assert {k for k, v in steps.items() if v["status"] != "ok"} == {"compile"}
    assert steps["compile"]["status"].startswith("skipped")
    rows = result["rows"]
    measured = {(r["step"], r["model"]) for r in rows}
    for key in ("minilm", "bert-base", "roberta-large", "bert-base-adapter"):
        assert ("speed", key) in measured, key
    speed = [r for r in rows if r["step"] == "speed" and r["model"] == "minilm"]
    assert [r["variant"] for r in speed] == ["fp32", "fp16", "fp16-weights", "bf16",
                                             "bf16-weights"]
    assert all(r["docs_per_s"] > 0 and r["min_cos"] is None or r["min_cos"] > 0.99
               for r in speed)
    (oom,) = [r for r in rows if r["step"] == "oom_backoff"]
    assert oom["calls"][0]["out_of_memory_errors"] > 0
    assert all(c["rows_failed"] == 0 and c["min_cos_vs_uncapped"] > 0.9999 for c in oom["calls"])
    assert any(r["step"] == "processes" for r in rows)
    assert {r["model"] for r in rows if r["step"] == "data_path"} == {
        "minilm", "bert-base", "roberta-large"}
    adapter = [r for r in rows if r["model"] == "bert-base-adapter"]
    assert adapter and all(r.get("transformers") for r in adapter)
    assert "| speed | roberta-large | fp32 |" in stdout            # the closing table
    assert result["imported_forbidden"] == []                    # no Ray, no adapters here


def test_the_check_refuses_ray_and_adapters_by_default():
    """The dry runs above ran with these refused in their own process and their encode
    children (`imported_forbidden` empty): the replica's code path needs neither on the GPU
    machine."""
    from gpu_check import ForbiddenImports, parse

    assert set(parse([]).forbid_imports) == {"ray", "adapters"}
    finder = ForbiddenImports({"ray", "adapters"})
    for name in ("ray", "ray.data", "adapters.models"):
        with pytest.raises(ImportError, match="not imported by the GPU check"):
            finder.find_spec(name)
    assert finder.find_spec("rayon") is None and finder.find_spec("torch") is None


def test_the_carried_fp16_minilm_comes_back_as_the_bundled_model(tmp_path):
    import torch
    from gpucheck.carry import write_minilm_fp16
    from gpucheck.models import minilm_folder
    from safetensors.torch import load_file

    from ray_job.encode.model.loading import bundled_model_path

    bundled = Path(bundled_model_path())
    carried = write_minilm_fp16(bundled, tmp_path / "carry" / "minilm")
    size = (carried / "model.safetensors").stat().st_size
    assert size < 0.51 * (bundled / "model.safetensors").stat().st_size
    back = minilm_folder(carried, tmp_path / "scratch")
    got, want = (load_file(str(f / "model.safetensors")) for f in (back, bundled))
    assert got.keys() == want.keys()
    for name, tensor in want.items():
        assert got[name].dtype == tensor.dtype
        if tensor.is_floating_point():
            assert torch.equal(got[name], tensor.half().float()), name
    assert sorted(p.name for p in back.iterdir()) == sorted(
        p.name for p in carried.iterdir())


def test_bucketed_micro_batches_have_one_shape_per_width_and_hold_every_row_once():
    from gpucheck.graphs import bucket_plan, fill

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 300, size=500)
    plan = bucket_plan(lengths, max_tokens=4096, max_rows=64, step=32)
    rows = np.concatenate([b.rows for b in plan])
    assert sorted(rows.tolist()) == list(range(500))
    shapes = {}
    for bucket in plan:
        assert bucket.width % 32 == 0 and lengths[bucket.rows].max() <= bucket.width
        assert len(bucket.rows) <= bucket.capacity
        assert bucket.capacity * bucket.width <= 4096 or bucket.capacity == 1
        assert shapes.setdefault(bucket.width, bucket.capacity) == bucket.capacity
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = np.arange(offsets[-1])
    ids, mask = fill(values, offsets, plan[-1], pad_id=0)
    n = len(plan[-1].rows)
    assert ids.shape == mask.shape == (plan[-1].capacity, plan[-1].width)
    assert (mask[:n].sum(1) == lengths[plan[-1].rows]).all() and (mask[n:, 0] == 1).all()


@pytest.mark.parametrize("lengths", [[128], [10, 300, 77]])
def test_forward_flops_count_the_matmuls_of_each_padded_row(lengths):
    from ray_job.encode.model.loading import bundled_model_path
    from ray_job.encode.model.shape import ModelShape, shape_of_folder

    shape = shape_of_folder(bundled_model_path())
    assert (shape.layers, shape.hidden, shape.intermediate, shape.heads) == (6, 384, 1536, 12)
    h, i, layers = 384, 1536, 6
    by_hand = sum(layers * (L * (4 * 2 * h * h + 2 * 2 * h * i) + 2 * 2 * L * L * h)
                  for L in lengths)
    assert shape.forward_flops(np.array(lengths)) == pytest.approx(by_hand)
    assert ModelShape(2, 8, 16, 2).flops_per_doc(10, 0.5) == pytest.approx(
        ModelShape(2, 8, 16, 2).forward_flops(np.array([20])))
