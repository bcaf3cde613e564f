"""The Ray session of one run: connect to a cluster (or start an embedded local Ray), keep
Ray's own chatter quiet unless --verbose, turn an authentication refusal into one line, and
cap the driver's malloc arenas before Ray's threads start.

A task's failure reaches the driver as the task's own exception (a StorageError naming the
file, a UserError...), not Ray's wrapper of it: Ray Data raises the original exception
(`raise_original_map_exception`), and `ray_session` takes it out of Ray's RayTaskError (which
stays chained to it, with the worker's traceback, for the failure log). Ray's handlers for
SIGTERM, which ray.init installs, are replaced again by the driver's (signals.py).

`ray_session(cfg)` is what the pipeline uses (with `starting_ray(cfg)`: Ray begun while the
driver plans, start.py); `auth`, `malloc`, `signals`, `start` and `stderr_filter` are its
parts.
"""
from __future__ import annotations

import contextlib
import sys

from ..config import JobConfig
from .auth import auth_hint
from .malloc import bound_malloc_arenas
from .signals import install_stop_handlers, stopping_handlers_installed
from .start import RayStart, init_args, quiet_data_context, quiet_ray_logs
from .stderr_filter import drop_benign_lines


@contextlib.contextmanager
def ray_session(cfg: JobConfig, starting: RayStart | None = None):
    """Connect to the configured Ray address, or start an embedded local Ray; quiet unless
    verbose. `starting`: the run's Ray, begun while the driver planned (`start.RayStart`):
    this session adopts it (waits for it, owns it from then on)."""
    import ray

    started, verbose = False, cfg.options.verbose
    quiet_ray_logs(verbose)
    if starting is not None or not ray.is_initialized():
        ours = stopping_handlers_installed()
        try:
            if starting is not None:
                starting.adopt()
            else:
                bound_malloc_arenas()   # before Ray's threads start: the driver's RSS stays flat
                ray.init(**init_args(cfg.options.address, verbose))
        except Exception as exc:
            hint = auth_hint(exc, cfg.options.address)
            if hint is None:
                raise
            raise hint from None
        if ours:
            install_stop_handlers()     # ray.init put its own in place (and Ray's C++ dump)
        started = True
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


@contextlib.contextmanager
def starting_ray(cfg: JobConfig):
    """A `RayStart` begun now where this process will start Ray itself (None where a Ray is
    initialized already); shut down on the way out unless `ray_session` adopted it."""
    ray = sys.modules.get("ray")            # not imported: not initialized (and no import here)
    if ray is not None and ray.is_initialized():
        yield None
        return
    bound_malloc_arenas()               # before Ray's threads start: the driver's RSS stays flat
    starting = RayStart(cfg.options.address, cfg.options.verbose).begin()
    try:
        yield starting
    finally:
        starting.close()


def task_cause(exc: BaseException) -> BaseException:
    """The exception a Ray task raised, out of Ray's wrappers of it (itself if none)."""
    import ray

    while isinstance(exc, ray.exceptions.RayTaskError) and isinstance(
            getattr(exc, "cause", None), BaseException):
        exc = exc.cause
    return exc
