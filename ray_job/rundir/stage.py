"""The stage contract: every Ray stage of a run is built from one frozen `RunContext`.

A stage is a `Stage`: a function `fn(batch, context)` that Ray Data runs as tasks, or a class
`fn(context)` whose instances are an actor pool called with each batch; with the batch size
and the resources it asks of Ray. The pipeline declares the run's stages as a list (read,
tokenize, encode, write) and builds the Ray Data graph by walking it, handing each stage the
same context. A stage reads what it needs from the context and takes no other argument: where
the run lives, the lease's fence, the replica's spec all come from there, never as keywords of
their own.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .fence import Fence
from .replica import ReplicaSpec


@dataclass(frozen=True)
class RunContext:
    """What every stage of one run shares, made once on the driver: plain, picklable data.

    `run_url`: the run directory every node reaches; `fence`: the lease the driver holds
    (each commit checks it, fence.py); `config_hash`: of the run's settings, stamped on every
    shard; `replica`: what a model replica loads and runs; `template` (a TextTemplate as a
    dict) and `id_field`: how the read stage makes a row's text and id; `recipe` (a
    TokenizerRecipe as a dict): the tokenizer; `previous`: the --previous run (a Ray object
    reference) or None; `task_threads` / `replica_threads`: the CPUs a tokenize task and a
    replica hold."""
    run_url: str
    fence: Fence | None = None
    replica: ReplicaSpec | None = None
    config_hash: str | None = None
    template: dict = field(default_factory=dict)
    id_field: str = "id"
    recipe: dict = field(default_factory=dict)
    previous: Any = None
    task_threads: int | None = None
    replica_threads: int | None = None

    def run_dir(self):
        """The run directory, fenced by the driver's lease (a worker's own `RunDir`)."""
        from .rundir import RunDir

        return RunDir(self.run_url, self.fence)


@dataclass(frozen=True)
class ActorPool:
    """An actor stage's pool: between `min_size` and `max_size` actors, each given at most
    `in_flight` batches at a time."""
    min_size: int
    max_size: int
    in_flight: int = 2


@dataclass(frozen=True)
class Stage:
    """One stage of the run: `fn` and what Ray gives it. `actors` None: a task per batch."""
    fn: Callable
    batch_size: int | None = None
    num_cpus: float = 1.0
    num_gpus: float | None = None
    memory: int | None = None
    actors: ActorPool | None = None

    @property
    def name(self) -> str:
        return self.fn.__name__
