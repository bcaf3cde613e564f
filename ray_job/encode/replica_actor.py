"""The class Ray Data starts as each model replica: the `Encoder`, imported in the replica's
process only.

The driver names this class in the dataset and never imports torch or transformers' model
code: that was ~2.5 s of every `ray-embed run`'s start on a 2-core machine and ~300 MB of the
driver's memory, for a class the driver only pickles by reference.
"""
from __future__ import annotations

from ..faults import NO_FAULTS, Faults
from ..rundir.replica import ReplicaSpec


class EncoderReplica:
    """`Encoder(replica, threads, faults, run_url, fence)` in the replica's process."""

    def __init__(self, replica: ReplicaSpec, threads: int | None = None,
                 faults: Faults = NO_FAULTS, run_url: str | None = None, fence=None):
        from .encoder import Encoder

        self.encoder = Encoder(replica, threads, faults, run_url, fence)

    def __call__(self, batch):
        return self.encoder(batch)
