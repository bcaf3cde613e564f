"""Ray, started while the driver plans the job.

Before a run's first row moves, its driver describes the model (transformers' and torch's
imports: ~4 s of one core) and starts an embedded Ray (its processes: ~4 s, mostly waiting
for them). One after the other, that was ~8 s of a 2-core machine's start with a core idle.
`RayStart.beside(plan)` runs the planning in a background thread while the main thread starts
Ray. Ray is started by the main thread on purpose: its processes die with the thread that
started them (Linux's parent-death signal follows the thread), and the driver's SIGTERM /
SIGINT handlers, which `ray.init` replaces by Ray's own (and its C++ dump), can only be put
back from the main thread, right after it (signals.py).

Only where this process starts Ray itself: a Ray already initialized in the process (tests,
notebooks) is used as it is, and the planning runs in the main thread. `ray_session` adopts a
started Ray (owns it from then on: shuts it down after the encode); a run refused before that
shuts it down on the way out (`close`).
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, TypeVar

T = TypeVar("T")

# How long a stopped driver waits for its planning thread to end (it may be writing the demo
# corpus: its temp file is removed when the write ends, never if the process exits under it)
STOP_WAIT_S = 10.0


def init_args(address: str | None, verbose: bool) -> dict:
    """`ray.init`'s arguments for a run ("local" always starts a new embedded Ray, never
    attaching to another one by accident)."""
    return {"address": address or "local", "include_dashboard": False,
            "log_to_driver": verbose,
            "logging_level": logging.INFO if verbose else logging.ERROR}


def quiet_ray_logs(verbose: bool) -> None:
    """Ray's own logging: errors only, unless --verbose; Ray Data's (imported here: it sets up
    its loggers when first imported) not even errors: a failed task's whole traceback is
    logged at ERROR before the driver says it in one line (task_errors)."""
    import ray.data  # noqa: F401 - its loggers exist from here on

    if not verbose:
        logging.getLogger("ray").setLevel(logging.ERROR)
        logging.getLogger("ray.data").setLevel(logging.CRITICAL)


def quiet_data_context(verbose: bool) -> None:
    """Ray Data's settings for a run: failures raised as the task's own exception; progress
    bars, execution banners and issue detectors only with --verbose."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.raise_original_map_exception = True
    ctx.enable_progress_bars = verbose
    ctx.print_on_execution_start = verbose
    if not verbose:
        ctx.issue_detectors_config.detectors = []


class RayStart:
    """A run's embedded Ray, started by `beside` while the planning runs in a thread."""

    def __init__(self, start_ray: Callable[[], None]):
        self.start_ray = start_ray           # ray.init and what follows it, in this thread
        self.started = self.adopted = False

    def beside(self, plan: Callable[..., T], *args) -> T:
        """`plan(*args)` in a background thread while this (main) thread starts Ray; its
        result, or its error (first: a refusal of the job says more than Ray's failure to
        start, which is raised when the planning went well)."""
        outcome: dict = {}
        done = threading.Event()        # not Thread.join: a join cut short by a signal can
        threading.Thread(target=_capture, args=(outcome, done, plan, args),   # say "ended"
                         name="ray-embed-plan", daemon=True).start()
        try:
            try:
                self.start_ray()
                self.started = True
            except Exception as exc:  # noqa: BLE001 - raised below, once the planning ended
                outcome.setdefault("start_error", exc)
            done.wait()
        except BaseException:     # a stop (SIGTERM / SIGINT): let the planning tidy up first
            done.wait(STOP_WAIT_S)
            raise
        for key in ("error", "start_error"):
            if key in outcome:
                raise outcome[key]
        return outcome["value"]

    def adopt(self) -> None:
        """`ray_session` owns the started Ray from here on."""
        self.adopted = True

    def close(self) -> None:
        """The end of the run: a Ray started but never adopted is shut down."""
        if not self.adopted:
            import ray

            if ray.is_initialized():
                ray.shutdown()


def _capture(outcome: dict, done: threading.Event, plan: Callable, args: tuple) -> None:
    try:
        outcome["value"] = plan(*args)
    except BaseException as exc:  # noqa: BLE001 - raised again by beside(), in the main thread
        outcome["error"] = exc
    finally:
        done.set()
