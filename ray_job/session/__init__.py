"""The Ray session of one run: connect to a cluster (or start an embedded local Ray), keep
Ray's own chatter quiet unless --verbose, turn an authentication refusal into one line, and
cap the driver's malloc arenas before Ray's threads start.

A task's failure reaches the driver as the task's own exception (a StorageError naming the
file, a UserError...), not Ray's wrapper of it: Ray Data raises the original exception
(`raise_original_map_exception`), and `ray_session` takes it out of Ray's RayTaskError (which
stays chained to it, with the worker's traceback, for the failure log). Ray's handlers for
SIGTERM, which ray.init installs, are replaced again by the driver's (signals.py).

`ray_session(cfg)` is what the pipeline uses (with `starting_ray(cfg)` and `plan_beside_ray`:
Ray started while the driver plans, start.py); `auth`, `malloc`, `signals`, `start` and
`stderr_filter` are its parts.
"""
from __future__ import annotations

import contextlib
import sys
import threading
from typing import Callable, TypeVar

from ..config import JobConfig
from .auth import auth_hint
from .malloc import bound_malloc_arenas
from .signals import install_stop_handlers, stopping_handlers_installed
from .start import RayStart, init_args, quiet_data_context, quiet_ray_logs
from .stderr_filter import drop_benign_lines

T = TypeVar("T")


@contextlib.contextmanager
def ray_session(cfg: JobConfig, starting: RayStart | None = None):
    """Connect to the configured Ray address, or start an embedded local Ray; quiet unless
    verbose. `starting`: the run's Ray, started while the driver planned (`start.RayStart`):
    this session adopts it (owns it from then on)."""
    import ray

    started, verbose = False, cfg.options.verbose
    if starting is not None and starting.started:
        starting.adopt()
        started = True
    elif not ray.is_initialized():
        start_ray(cfg)
        started = True
    quiet_ray_logs(verbose)
    quiet_data_context(verbose)
    with drop_benign_lines(enabled=not verbose):
        try:
            yield ray
        except ray.exceptions.RayTaskError as exc:
            cause = task_cause(exc)
            if cause is exc:
                raise
            raise cause from exc
        finally:
            if started:
                ray.shutdown()


def start_ray(cfg: JobConfig) -> None:
    """`ray.init` for a run, in the main thread: Ray's logs quietened first, the malloc arenas
    capped before its threads start, an authentication refusal turned into one line, and the
    driver's stop handlers put back in place of the ones `ray.init` installs."""
    import ray

    quiet_ray_logs(cfg.options.verbose)
    ours = stopping_handlers_installed()
    bound_malloc_arenas()               # before Ray's threads start: the driver's RSS stays flat
    try:
        ray.init(**init_args(cfg.options.address, cfg.options.verbose))
    except Exception as exc:
        hint = auth_hint(exc, cfg.options.address)
        if hint is None:
            raise
        raise hint from None
    if ours:
        install_stop_handlers()         # ray.init put its own in place (and Ray's C++ dump)


@contextlib.contextmanager
def starting_ray(cfg: JobConfig):
    """A `RayStart` where this process will start Ray itself (None where a Ray is initialized
    already, or not on the main thread: `ray.init` must run there); what it started and
    `ray_session` did not adopt is shut down on the way out."""
    ray = sys.modules.get("ray")            # not imported: not initialized (and no import here)
    if (ray is not None and ray.is_initialized()) or \
            threading.current_thread() is not threading.main_thread():
        yield None
        return
    starting = RayStart(lambda: start_ray(cfg))
    try:
        yield starting
    finally:
        starting.close()


def plan_beside_ray(starting: RayStart | None, plan: Callable[..., T], *args) -> T:
    """`plan(*args)`, while `starting` starts Ray (in this thread, or right here without one)."""
    return plan(*args) if starting is None else starting.beside(plan, *args)


def task_cause(exc: BaseException) -> BaseException:
    """The exception a Ray task raised, out of Ray's wrappers of it (itself if none)."""
    import ray

    while isinstance(exc, ray.exceptions.RayTaskError) and isinstance(
            getattr(exc, "cause", None), BaseException):
        exc = exc.cause
    return exc
