"""The Ray session of one run: connect to a cluster (or start an embedded local Ray), keep
Ray's own chatter quiet unless --verbose, turn an authentication refusal into one line, and
cap the driver's malloc arenas before Ray's threads start.

A task's failure reaches the driver as the task's own exception (a StorageError naming the
file, a UserError...), not Ray's wrapper of it: Ray Data raises the original exception
(`raise_original_map_exception`), and `ray_session` takes it out of Ray's RayTaskError (which
stays chained to it, with the worker's traceback, for the failure log). Ray's handlers for
SIGTERM, which ray.init installs, are replaced again by the driver's (signals.py).

`ray_session(cfg)` is what the pipeline uses; `auth`, `malloc`, `signals` and `stderr_filter`
are its parts.
"""
from __future__ import annotations

import contextlib
import logging

from ..config import JobConfig
from .auth import auth_hint
from .malloc import bound_malloc_arenas
from .signals import install_stop_handlers, stopping_handlers_installed
from .stderr_filter import drop_benign_lines


@contextlib.contextmanager
def ray_session(cfg: JobConfig):
    """Connect to the configured Ray address, or start an embedded local Ray; quiet unless verbose."""
    import ray
    from ray.data import DataContext

    started, verbose = False, cfg.options.verbose
    if not verbose:
        logging.getLogger("ray").setLevel(logging.ERROR)
        # Ray Data logs a failed task's whole traceback at ERROR, then raises it to the
        # driver, which says it in one line (task_errors) or raises it as it is
        logging.getLogger("ray.data").setLevel(logging.CRITICAL)
    if not ray.is_initialized():
        ours = stopping_handlers_installed()
        bound_malloc_arenas()       # before Ray's threads start: the driver's RSS stays flat
        # "local" always starts a new embedded Ray, never attaching to another one by accident
        try:
            ray.init(address=cfg.options.address or "local", include_dashboard=False,
                     log_to_driver=verbose,
                     logging_level=logging.INFO if verbose else logging.ERROR)
        except Exception as exc:
            hint = auth_hint(exc, cfg.options.address)
            if hint is None:
                raise
            raise hint from None
        if ours:
            install_stop_handlers()     # ray.init put its own in place (and Ray's C++ dump)
        started = True
    ctx = DataContext.get_current()
    ctx.raise_original_map_exception = True
    ctx.enable_progress_bars = verbose
    ctx.print_on_execution_start = verbose
    if not verbose:
        ctx.issue_detectors_config.detectors = []
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


def task_cause(exc: BaseException) -> BaseException:
    """The exception a Ray task raised, out of Ray's wrappers of it (itself if none)."""
    import ray

    while isinstance(exc, ray.exceptions.RayTaskError) and isinstance(
            getattr(exc, "cause", None), BaseException):
        exc = exc.cause
    return exc
