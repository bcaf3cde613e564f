"""The Ray session of one run: connect to a cluster (or start an embedded local Ray), keep
Ray's own chatter quiet unless --verbose, turn an authentication refusal into one line, and
cap the driver's malloc arenas before Ray's threads start.

A task's failure reaches the driver as the task's own exception (a StorageError naming the
file, a UserError...), not Ray's wrapper of it: Ray Data raises the original exception
(`raise_original_map_exception`), and `ray_session` takes it out of Ray's RayTaskError (which
stays chained to it, with the worker's traceback, for the failure log). Ray's handlers for
SIGTERM, which ray.init installs, are replaced again by the driver's (signals.py).

`ray_session(cfg)` is what the pipeline uses, once the job is planned; `auth`, `malloc`,
`signals`, `start` and `stderr_filter` are its parts.
"""
from __future__ import annotations

import contextlib
import signal

from ..config import JobConfig
from ..errors import Stopped
from .auth import auth_hint
from .malloc import bound_malloc_arenas
from .signals import install_stop_handlers, stopping_handlers_installed
from .start import init_args, quiet_data_context, quiet_ray_logs
from .stderr_filter import drop_benign_lines


@contextlib.contextmanager
def ray_session(cfg: JobConfig):
    """Connect to the configured Ray address, or start an embedded local Ray (a Ray already
    initialized in this process, as in tests or a notebook, is used as it is); quiet unless
    verbose. What it started it shuts down on the way out."""
    import ray

    verbose = cfg.options.verbose
    started = not ray.is_initialized()
    try:
        if started:
            start_ray(cfg)
        quiet_ray_logs(verbose)
        quiet_data_context(verbose)
        with drop_benign_lines(enabled=not verbose):
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
    driver's stop handlers put back in place of the ones `ray.init` installs.

    `ray.init` begins by making SIGTERM a `sys.exit(15)`: a SIGTERM that comes while it runs
    leaves it as SystemExit, which is taken here for what it is, the driver's stop (one line,
    exit 143; the caller shuts down what had started). Signals are not blocked instead: Ray's
    processes would inherit the mask and ignore the SIGTERM that shuts them down."""
    import ray

    quiet_ray_logs(cfg.options.verbose)
    ours = stopping_handlers_installed()
    bound_malloc_arenas()               # before Ray's threads start: the driver's RSS stays flat
    try:
        ray.init(**init_args(cfg.options.address, cfg.options.verbose))
    except SystemExit as exc:
        if ours and exc.code == signal.SIGTERM:
            raise Stopped(signal.SIGTERM) from None
        raise
    except Exception as exc:
        hint = auth_hint(exc, cfg.options.address)
        if hint is None:
            raise
        raise hint from None
    finally:
        if ours:
            install_stop_handlers()     # ray.init put its own in place (and Ray's C++ dump)


def task_cause(exc: BaseException) -> BaseException:
    """The exception a Ray task raised, out of Ray's wrappers of it (itself if none)."""
    import ray

    while isinstance(exc, ray.exceptions.RayTaskError) and isinstance(
            getattr(exc, "cause", None), BaseException):
        exc = exc.cause
    return exc
