"""Size the encoder pool and task resources from what the cluster has (pure).

The rule that keeps a small machine from hanging: the encoder replicas never take every CPU;
at least one read/tokenize/write task can always be scheduled beside them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ...errors import UserError

CPU_THREADS_PER_REPLICA = 8   # on CPUs, few replicas with many threads beat many small ones


@dataclass(frozen=True)
class ResourcePlan:
    replicas: int          # encoder actors (the pool scales between 1 and this)
    min_replicas: int
    actor_cpus: float      # logical CPUs each replica holds
    actor_gpus: float      # GPUs each replica holds (fractional for small models)
    threads: int           # torch intra-op threads per CPU replica
    task_cpus: float       # logical CPUs of each read / tokenize / write task
    free_cpus: float       # CPUs left for tasks while every replica runs


def plan_resources(cluster: dict, device: str, replicas: int | None = None,
                   gpus_per_replica: float = 1.0, cpus_per_replica: float = 1.0,
                   threads: int | None = None) -> ResourcePlan:
    cpus = float(cluster.get("CPU", 0))
    gpus = float(cluster.get("GPU", 0))
    if cpus <= 0:
        raise UserError("the Ray cluster has no CPUs to read and tokenize with")
    task_cpus = 1.0 if cpus >= 2 else cpus / 2
    budget = cpus - task_cpus                      # what the replicas may take, together
    if device == "cuda":
        if gpus < gpus_per_replica:
            raise UserError(f"device cuda needs {gpus_per_replica} GPU per replica; "
                            f"the cluster has {gpus:g}")
        n = replicas or max(1, math.floor(gpus / gpus_per_replica + 1e-9))
        actor_gpus = gpus_per_replica
        n_threads = threads or 1
    else:
        n = replicas or max(1, math.floor(cpus / CPU_THREADS_PER_REPLICA))
        actor_gpus = 0.0
        n_threads = threads or max(1, math.floor(cpus / n))
    actor_cpus = min(cpus_per_replica, budget / n)
    if actor_cpus <= 0:
        raise UserError(f"{n} replicas leave no CPU for reading on a {cpus:g}-CPU cluster")
    # the pool autoscales between 1 and n replicas: it can shrink when a node is lost
    return ResourcePlan(n, 1, actor_cpus, actor_gpus, n_threads, task_cpus,
                        cpus - n * actor_cpus)
