"""How a command ends: its exit code, the one line the user sees, and the failure log.

    0    done
    1    the data failed a check (a corrupt shard, a failed verification), or --strict
         and rows were rejected
    2    refused: a mistake in the input, the config or the environment; nothing changed
    3    the storage failed (a full disk, an I/O error, an object store unreachable or timing
         out after its retries): run the same command again once it is back
    4    an unexpected error (a bug): the log holds its traceback
    130  stopped by SIGINT, 143 stopped by SIGTERM (`ray job stop`): the lease released,
         Ray shut down; run the same command to resume

Every failure (codes 1, 3 and 4) writes its full traceback to a log file: in the run
directory (`logs/driver-<UTC time>-<pid>.log`) when there is one to write it to, else in the
private scratch folder (`$TMPDIR/ray-embed-<uid>/logs/`), and the one line names it. A
refusal (2) and a stop (130, 143) write none. The line and the log go through the redactor:
no credential of a URL reaches either.
"""
from __future__ import annotations

import errno
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .errors import DataError, Stopped, UserError
from .redact import redact_text
from .rundir.layout import driver_log
from .storage.failures import StorageError, first_line, is_storage_failure
from .storage.files import is_url

EXIT_DATA, EXIT_REFUSED, EXIT_STORAGE, EXIT_UNEXPECTED = 1, 2, 3, 4
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}
RESUME = "run the same command to resume"


@dataclass(frozen=True)
class Outcome:
    code: int
    line: str               # what stderr gets (redacted when printed)
    logged: bool = True     # whether the traceback goes to a log file


def stop_within(exc: BaseException) -> BaseException | None:
    """The stop (a signal's `Stopped`, or Ctrl-C) behind `exc`: itself, or the cause of an
    error it became (the handler's exception raised inside a C call that then returned a
    value is a SystemError whose context is the stop)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (Stopped, KeyboardInterrupt)):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def outcome_of(exc: BaseException) -> Outcome:
    exc = stop_within(exc) or exc
    if isinstance(exc, UserError):
        return Outcome(EXIT_REFUSED, f"ray-embed: error: {exc}", logged=False)
    if isinstance(exc, (Stopped, KeyboardInterrupt)):
        signum = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
        return Outcome(EXIT_SIGNAL.get(signum, 128 + signum),
                       f"ray-embed: stopped ({signal.Signals(signum).name}); {RESUME}",
                       logged=False)
    if isinstance(exc, DataError):
        return Outcome(EXIT_DATA, f"ray-embed: failed: {exc}")
    if isinstance(exc, StorageError):
        hint = ("free some space, then " if exc.errno in (errno.ENOSPC, errno.EDQUOT) else
                "once the storage answers, ")
        return Outcome(EXIT_STORAGE, f"ray-embed: failed: {exc}; {hint}{RESUME}")
    if is_storage_failure(exc):
        return Outcome(EXIT_STORAGE, f"ray-embed: failed: storage error "
                                     f"({type(exc).__name__}: {first_line(exc)}); {RESUME}")
    return Outcome(EXIT_UNEXPECTED, f"ray-embed: failed: unexpected {type(exc).__name__}: "
                                    f"{first_line(exc)}; {RESUME}")


def report_failure(exc: BaseException, run_location: str | None, argv: list[str],
                   stderr=None) -> int:
    """Print the one line of `exc` (naming its log, which this writes) and return the exit
    code."""
    outcome = outcome_of(exc)
    line = outcome.line
    if outcome.logged:
        where = write_failure_log(failure_text(exc, argv, outcome.code), run_location,
                                  storage_failed=outcome.code == EXIT_STORAGE)
        line += f" (full log: {where})" if where else " (no log: it could not be written)"
    print(redact_text(line), file=stderr or sys.stderr)
    return outcome.code


def failure_text(exc: BaseException, argv: list[str], code: int) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    lines = [f"ray-embed {__version__} failed at {stamp} (exit code {code})",
             f"command: ray-embed {' '.join(argv)}", "",
             *traceback.format_exception(exc)]
    return redact_text("\n".join(line.rstrip("\n") for line in lines) + "\n")


def write_failure_log(text: str, run_location: str | None, storage_failed: bool) -> str | None:
    """Write the log; returns where it went (None: nowhere could take it). The run directory
    when `run_location` is one (has its job.json), but not an object store whose storage just
    failed (it would make the user wait out its retries again); else the scratch folder."""
    name = driver_log(time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), os.getpid())
    if run_location and not (storage_failed and is_url(run_location)):
        try:
            from .rundir.rundir import RunDir

            run_dir = RunDir.at(run_location)
            if run_dir.has_job():
                return run_dir.write_log(name, text)
        except Exception:  # noqa: BLE001 - a full disk, a store that is down: the scratch dir
            pass
    try:
        from .storage.scratch import private_dir

        path = Path(private_dir("logs")) / Path(name).name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        return str(path)
    except Exception:  # noqa: BLE001 - the line is still printed
        return None
