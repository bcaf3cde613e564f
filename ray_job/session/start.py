"""How a run's Ray is started and quietened: `ray.init`'s arguments, Ray's logging and Ray
Data's settings."""
from __future__ import annotations

import logging


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
