"""The cluster files parse and carry what they must, so they do not rot."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ray_job.config import build_config

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
IMAGE = "ghcr.io/example/ray-embed:latest"


@pytest.mark.parametrize("job", sorted((CLUSTER / "jobs").glob("*.yaml")), ids=lambda p: p.name)
def test_example_jobs_are_valid_configs(job):
    cfg = build_config(str(job), {})
    assert cfg.spec.inputs and cfg.options.output.startswith(("/runs/", "s3://"))
    assert cfg.spec.precision == "auto" and cfg.options.max_batch_tokens >= 16384


def test_specter2_job_uses_the_published_recipe():
    cfg = build_config(str(CLUSTER / "jobs" / "s2-specter2.yaml"), {})
    assert (cfg.spec.model, cfg.spec.adapter, cfg.spec.pooling) == (
        "allenai/specter2_base", "allenai/specter2", "cls")
    assert cfg.spec.table == "papers_with_abstracts" and cfg.spec.id_field == "corpusid"


def test_cluster_launcher_has_a_cpu_head_gpu_workers_an_image_and_installs_the_package():
    spec = yaml.safe_load((CLUSTER / "ray-cluster-aws-gpu.yaml").read_text())
    nodes = spec["available_node_types"]
    assert "GPU" not in nodes[spec["head_node_type"]]["resources"]
    gpu = [n for n in nodes.values() if n["resources"].get("GPU")]
    assert gpu and gpu[0]["max_workers"] > gpu[0]["min_workers"]          # autoscaling
    assert spec["docker"]["image"] == IMAGE
    assert any("pip install" in c and "ray_job" in c for c in spec["setup_commands"])


def test_kuberay_job_runs_the_entrypoint_on_a_gpu_worker_group():
    spec = yaml.safe_load((CLUSTER / "kuberay-rayjob.yaml").read_text())
    assert spec["kind"] == "RayJob"
    assert "python -m ray_job run --address auto" in spec["spec"]["entrypoint"]
    yaml.safe_load(spec["spec"]["runtimeEnvYAML"])
    group = spec["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1 and group["maxReplicas"] > group["minReplicas"]


def dockerfile_ray_version() -> str:
    text = (ROOT / "Dockerfile").read_text()
    version = re.search(r"^ARG RAY_VERSION=(\S+)$", text, re.M).group(1)
    base = re.search(r"^FROM (\S+)$", text, re.M).group(1)
    assert base.replace("${RAY_VERSION}", version).startswith(f"rayproject/ray:{version}-")
    assert base.endswith("-gpu")                                    # CUDA base image
    return version


def test_the_dockerfile_and_the_configs_agree_on_ray_image_and_entrypoint():
    """Docker cannot build here: the image is checked statically against what runs it."""
    version = dockerfile_ray_version()
    kuberay = yaml.safe_load((CLUSTER / "kuberay-rayjob.yaml").read_text())["spec"]
    assert kuberay["rayClusterSpec"]["rayVersion"] == version
    head = kuberay["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"]
    workers = [c for g in kuberay["rayClusterSpec"]["workerGroupSpecs"]
               for c in g["template"]["spec"]["containers"]]
    assert {c["image"] for c in head + workers} == {IMAGE}
    launcher = yaml.safe_load((CLUSTER / "ray-cluster-aws-gpu.yaml").read_text())
    assert launcher["docker"]["image"] == IMAGE
    # the configs' entrypoint is the module the image installs and starts at build time
    assert kuberay["entrypoint"].startswith("python -m ray_job run ")
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "python -m ray_job --help" in dockerfile
    assert '"ray[default,data]==${RAY_VERSION}"' in dockerfile and "torch==" in dockerfile
    # the build/push line in cluster/README.md makes the image the configs run
    assert f"docker build -t {IMAGE} ." in (CLUSTER / "README.md").read_text()
