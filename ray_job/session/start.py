"""Ray, started while the driver plans the job.

Before a run's first row moves, its driver describes the model (transformers' and torch's
imports: ~4 s of one core) and starts an embedded Ray (its processes: ~4 s, mostly waiting
for them). One after the other, that was ~8 s of a 2-core machine's start with a core idle.
`RayStart` begins `ray.init` in a background thread as soon as the command is checked, while
the main thread describes the model and plans the read.

Only where this process starts Ray itself: a Ray already initialized in the process (tests,
notebooks) is used as it is. `adopt()` hands the started Ray to `ray_session`, which owns it
from then on (shuts it down, installs the signal handlers); a run refused before that shuts
it down on the way out (`close`). Errors of `ray.init` are raised by `adopt()`, in the main
thread, as if it had been called there.
"""
from __future__ import annotations

import logging
import threading


def init_args(address: str | None, verbose: bool) -> dict:
    """`ray.init`'s arguments for a run ("local" always starts a new embedded Ray, never
    attaching to another one by accident)."""
    return {"address": address or "local", "include_dashboard": False,
            "log_to_driver": verbose,
            "logging_level": logging.INFO if verbose else logging.ERROR}


def quiet_ray_logs(verbose: bool, data: bool = True) -> None:
    """Ray's own logging: errors only, unless --verbose; `data`: Ray Data's too (imported
    here: it sets up its loggers when first imported), not even errors: a failed task's whole
    traceback is logged at ERROR before the driver says it in one line (task_errors)."""
    if verbose:
        return
    logging.getLogger("ray").setLevel(logging.ERROR)
    if data:
        import ray.data  # noqa: F401 - its loggers exist from here on

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
    """`ray.init(**init_args)` in a background thread, which then stays alive
    until `close()`: Ray's own processes die with the thread that started them (Linux's
    parent-death signal follows the thread, not the process), so it lives as long as the
    session."""

    def __init__(self, address: str | None, verbose: bool):
        self.args, self.verbose = init_args(address, verbose), verbose
        self.error: BaseException | None = None
        self.adopted = False
        self.ready, self.finished = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, name="ray-start", daemon=True)

    def begin(self) -> "RayStart":
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            self._start()
        finally:
            self.ready.set()
        self.finished.wait()

    def _start(self) -> None:
        try:
            import ray

            quiet_ray_logs(self.verbose, data=False)
            ray.init(**self.args)
            quiet_ray_logs(self.verbose)        # Ray Data's import: after Ray's processes start
        except BaseException as exc:  # noqa: BLE001 - raised again by adopt(), in the main thread
            self.error = exc

    def adopt(self) -> None:
        """Wait for Ray; raise what `ray.init` raised. The caller owns the session after
        (shuts it down before `close`)."""
        self.ready.wait()
        self.adopted = True
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """The end: a run that ended before adopting its Ray shuts it down here; then the
        thread ends."""
        self.ready.wait()
        if not self.adopted and self.error is None:
            import ray

            ray.shutdown()
        self.finished.set()
        self.thread.join()
