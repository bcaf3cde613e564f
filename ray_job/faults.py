"""Test-only fault injection, kept out of the job config.

The tests ask for a fault through environment variables of the driver process:

    RAY_EMBED_FAULT_KILL_ENCODER_AFTER=N   an encoder process exits hard (os._exit) when it
                                           receives its (N+1)-th batch ...
    RAY_EMBED_FAULT_MARKER=PATH            ... once per run: the first replica to get there
                                           creates PATH, and no replica dies while it exists.

`faults_from_environment` reads them, on the driver and nowhere else; the result travels to the
replicas as plain data (constructor arguments), so it does not depend on what environment a
Ray worker inherits.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from .errors import ConfigError

KILL_ENCODER_AFTER_ENV = "RAY_EMBED_FAULT_KILL_ENCODER_AFTER"
MARKER_ENV = "RAY_EMBED_FAULT_MARKER"


@dataclass(frozen=True)
class Faults:
    kill_encoder_after: int | None = None    # batches an encoder completes before it dies
    marker: str | None = None                # exists once the fault has happened

    def kill_encoder_now(self, calls: int) -> bool:
        """Whether an encoder receiving its `calls`-th batch dies now (then the marker exists)."""
        if self.kill_encoder_after is None or calls <= self.kill_encoder_after:
            return False
        try:
            open(self.marker, "x").close()        # one replica wins, once per run
        except FileExistsError:
            return False
        return True


NO_FAULTS = Faults()


def faults_from_environment(environ: Mapping[str, str] = os.environ) -> Faults:
    after, marker = environ.get(KILL_ENCODER_AFTER_ENV), environ.get(MARKER_ENV)
    if after is None:
        return NO_FAULTS
    if not after.strip().isdigit() or not marker:
        raise ConfigError(f"{KILL_ENCODER_AFTER_ENV} needs a whole number of batches and "
                          f"{MARKER_ENV} a file path; got {after!r} and {marker!r}")
    return Faults(int(after), marker)
