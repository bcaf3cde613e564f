"""The class Ray Data starts as each model replica: the `Encoder`, imported in the replica's
process only, and the replica's test hook (`hooks.before_batch`, asked before each batch).

The driver names this class in the dataset and never imports torch or transformers' model
code: those imports would lengthen every run's start and grow the driver's memory, for a class
the driver only pickles by reference.
"""
from __future__ import annotations

from .. import hooks
from ..rundir.stage import RunContext


class EncoderReplica:
    """The encode stage: `Encoder(context.replica, context.replica_threads)` in the replica's
    process, keeping the rows the model fails on as rejects."""

    def __init__(self, context: RunContext):
        from .encoder import Encoder

        self.encoder = Encoder(context.replica, context.replica_threads, rejects=True)
        self.calls = 0

    def __call__(self, batch):
        self.calls += 1
        hooks.before_batch(self.calls)
        return self.encoder(batch)
