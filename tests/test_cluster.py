"""The cluster files parse and carry what they must, so they do not rot."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ray_job.config import build_config

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"


@pytest.mark.parametrize("job", sorted((CLUSTER / "jobs").glob("*.yaml")), ids=lambda p: p.name)
def test_example_jobs_are_valid_configs(job):
    cfg = build_config(str(job), {})
    assert cfg.spec.inputs and cfg.options.output.startswith(("/runs/", "s3://"))
    assert cfg.spec.precision == "auto" and cfg.options.max_batch_tokens >= 16384


def test_specter2_job_uses_the_published_recipe():
    cfg = build_config(str(CLUSTER / "jobs" / "s2-specter2.yaml"), {})
    assert (cfg.spec.model, cfg.spec.adapter, cfg.spec.pooling) == ("allenai/specter2_base", "allenai/specter2", "cls")
    assert cfg.spec.table == "papers_with_abstracts" and cfg.spec.id_field == "corpusid"


def test_cluster_launcher_has_a_cpu_head_gpu_workers_an_image_and_installs_the_package():
    spec = yaml.safe_load((CLUSTER / "ray-cluster-aws-gpu.yaml").read_text())
    nodes = spec["available_node_types"]
    assert "GPU" not in nodes[spec["head_node_type"]]["resources"]
    gpu = [n for n in nodes.values() if n["resources"].get("GPU")]
    assert gpu and gpu[0]["max_workers"] > gpu[0]["min_workers"]          # autoscaling
    assert "gpu" in spec["docker"]["image"]
    assert any("pip install" in c and "ray_job" in c for c in spec["setup_commands"])


def test_kuberay_job_runs_the_entrypoint_on_a_gpu_worker_group():
    spec = yaml.safe_load((CLUSTER / "kuberay-rayjob.yaml").read_text())
    assert spec["kind"] == "RayJob"
    assert "python -m ray_job run --address auto" in spec["spec"]["entrypoint"]
    yaml.safe_load(spec["spec"]["runtimeEnvYAML"])
    group = spec["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1 and group["maxReplicas"] > group["minReplicas"]
