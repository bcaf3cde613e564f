"""The job's own errors raised inside Ray tasks, raised again on the driver as themselves.

Ray hands the driver a task's failure as a RayTaskError that holds the task's traceback as
text, not the exception (Ray Data wraps it in a UserCodeException on the way). An error of
`errors.TASK_ERRORS` (an input that changed while it was read, a lease another driver took
over) is found in that text by its class name and raised again with its own one-line message,
so the CLI prints that line, not a remote traceback.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from ..errors import TASK_ERRORS


def raised_in_task(exc: BaseException) -> Exception | None:
    """The TASK_ERRORS error that made the task fail: the one Ray kept (`cause`, where the
    task raised it itself), else the one whose line is in the traceback text (the last such
    line: the innermost); None when there is none."""
    cause = getattr(exc, "cause", None)
    if type(cause) in TASK_ERRORS:            # Ray may have added its own lines to it
        return type(cause)(str(cause).strip().splitlines()[0])
    text = str(exc)
    found = None
    for cls in TASK_ERRORS:
        for match in re.finditer(rf"^(?:[\w.]+\.)?{cls.__name__}: (?P<message>.+)$", text,
                                 flags=re.MULTILINE):
            if found is None or match.start() > found[0]:
                found = (match.start(), cls(match["message"].strip()))
    return found[1] if found else None


@contextlib.contextmanager
def task_errors() -> Iterator[None]:
    """Around the driver's wait on Ray tasks: a task that failed with one of TASK_ERRORS
    raises it here, as itself."""
    try:
        yield
    except Exception as exc:
        if type(exc) in TASK_ERRORS:          # raised on the driver: as it is
            raise
        found = raised_in_task(exc)
        if found is None:
            raise
        raise found from None
