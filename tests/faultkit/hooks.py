"""The hooks object the product asks (ray_job/hooks.py): a fault plan, done."""
from __future__ import annotations

import os

from .injector import Injector
from .plan import FaultPlan


class Hooks:
    def __init__(self, plan: FaultPlan):
        self.plan = plan
        self.injector = Injector(plan.storage)

    def before_storage(self, kind: str, op: str, path: str) -> None:
        self.injector.before(kind, op, path)

    def before_batch(self, calls: int) -> None:
        """A hard process exit, as when a node dies (no cleanup, no exception to catch)."""
        if self.plan.kill_encoder_now(calls):
            os._exit(1)


def install(argument: str) -> Hooks:
    """`argument`: the path of the plan's JSON file."""
    return Hooks(FaultPlan.load(argument))
