import pytest

from ray_job.encode.model.pool_resources import plan_resources
from ray_job.encode.model.precision import cpu_has_native_bf16, pick_precision
from ray_job.errors import UserError


@pytest.mark.parametrize("cpus", [1, 2, 3, 4, 8, 16, 64])
@pytest.mark.parametrize("replicas", [None, 1, 4])
def test_cpu_replicas_never_take_every_cpu(cpus, replicas):
    plan = plan_resources({"CPU": cpus}, "cpu", replicas=replicas, cpus_per_replica=2.0)
    assert plan.free_cpus >= plan.task_cpus > 0       # a read/tokenize/write task always fits
    assert plan.replicas * plan.actor_cpus <= cpus - plan.task_cpus + 1e-9
    assert plan.threads >= 1


def test_two_cpu_machine_gets_one_replica_with_both_cores_as_threads():
    plan = plan_resources({"CPU": 2}, "cpu")
    assert (plan.replicas, plan.actor_cpus, plan.threads, plan.task_cpus) == (1, 1.0, 2, 1.0)


@pytest.mark.parametrize("gpus, per, expected", [(1, 1.0, 1), (4, 1.0, 4), (2, 0.5, 4)])
def test_gpu_replicas_one_per_gpu_or_fraction(gpus, per, expected):
    plan = plan_resources({"CPU": 8, "GPU": gpus}, "cuda", gpus_per_replica=per)
    assert plan.replicas == expected and plan.min_replicas == 1
    assert plan.actor_gpus == per and plan.free_cpus >= 1


def test_cuda_without_gpus_is_a_user_error():
    with pytest.raises(UserError, match="GPU"):
        plan_resources({"CPU": 8}, "cuda")


def test_bf16_detection_reads_cpu_flags_not_torch_emulation():
    assert cpu_has_native_bf16("flags\t: fpu sse avx512f avx512bw amx_bf16 amx_tile\n")
    assert cpu_has_native_bf16("flags\t: fpu avx512f avx512_bf16\n")
    assert not cpu_has_native_bf16("flags\t: fpu sse avx512f avx512bw avx512_vnni\n")


def test_auto_precision_per_device():
    assert pick_precision("auto", "cuda") == "fp16"
    assert pick_precision("auto", "cpu", native_bf16=True) == "bf16"
    assert pick_precision("auto", "cpu", native_bf16=False) == "fp32"
    assert pick_precision("fp32", "cuda") == "fp32"
