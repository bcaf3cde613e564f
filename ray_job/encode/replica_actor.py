"""The class Ray Data starts as each model replica: the `Encoder`, imported in the replica's
process only, and the replica's test hook (`hooks.before_batch`, asked before each batch).

The driver names this class in the dataset and never imports torch or transformers' model
code: that was ~2.5 s of every `ray-embed run`'s start on a 2-core machine and ~300 MB of the
driver's memory, for a class the driver only pickles by reference.
"""
from __future__ import annotations

from .. import hooks
from ..rundir.replica import ReplicaSpec


class EncoderReplica:
    """`Encoder(replica, threads, run_url, fence)` in the replica's process."""

    def __init__(self, replica: ReplicaSpec, threads: int | None = None,
                 run_url: str | None = None, fence=None):
        from .encoder import Encoder

        self.encoder = Encoder(replica, threads, run_url, fence)
        self.calls = 0

    def __call__(self, batch):
        self.calls += 1
        hooks.before_batch(self.calls)
        return self.encoder(batch)
