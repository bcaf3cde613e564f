"""Turning the fault plan on: the one switch (`ray_job.hooks.HOOKS_ENV`) names this package
and a plan file; the product forwards it to its Ray workers."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

from ray_job.hooks import HOOKS_ENV

from .plan import FaultPlan, StorageFaults

KIT = Path(__file__).resolve().parent


def switch_env(plan: FaultPlan, folder: Path) -> dict[str, str]:
    """The environment that turns `plan` on, its file written into `folder`; storage counts
    are kept there too (shared by every process of the run) unless the plan names a place."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkstemp(prefix="fault-plan-", suffix=".json", dir=folder)[1])
    if plan.storage.state_dir is None:          # counts of this plan only
        plan = dataclasses.replace(plan, storage=dataclasses.replace(
            plan.storage, state_dir=str(path.with_suffix(".counts"))))
    path.write_text(plan.to_json())
    return {HOOKS_ENV: f"{KIT}:{path}"}


def arm(monkeypatch, folder: Path, plan: FaultPlan) -> None:
    """`plan` on for the rest of the test (monkeypatch undoes it)."""
    for name, value in switch_env(plan, folder).items():
        monkeypatch.setenv(name, value)


def disarm(monkeypatch) -> None:
    monkeypatch.delenv(HOOKS_ENV, raising=False)


@contextlib.contextmanager
def armed(plan: FaultPlan) -> Iterator[None]:
    """`plan` on while the block runs (its files in a temp folder removed after)."""
    with tempfile.TemporaryDirectory(prefix="faults-") as folder, \
            mock.patch.dict(os.environ, switch_env(plan, Path(folder))):
        yield


def injected(storage: StorageFaults):
    """Storage faults only, while the block runs."""
    return armed(FaultPlan(storage=storage))
