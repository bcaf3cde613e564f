"""A fault plan: what the product's two test hooks (ray_job/hooks.py) are to do in one run.

- `kill_encoder_after` / `marker`: a replica exits hard when it receives its (N+1)-th batch,
  once per run: the first replica to get there creates `marker`, and none dies while it
  exists;
- `storage`: rules for the storage door (ray_job/storage/files.py) to fail, slow down or
  stall matching operations (`StorageFault`).

A plan travels as one JSON file that every process of the run reads (`FaultPlan.load`).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ray_job.errors import ConfigError

# the kinds of storage operation (each method of storage.files.Files is one kind)
OP_KINDS = ("stat", "list", "read", "open", "write", "move", "remove")
# what an injected fault does: fail with an errno, or sleep first (and then fail or go on)
FAULT_ERRNOS = {"error": "EIO", "enospc": "ENOSPC", "unreachable": "ECONNREFUSED",
                "stall": "ETIMEDOUT"}
FAULT_KINDS = (*FAULT_ERRNOS, "latency")


@dataclass(frozen=True)
class StorageFault:
    """One rule: matching operations (`op`: a kind of OP_KINDS, a Files method name, or "*";
    `path`: an fnmatch pattern on the path the door is given) fail with `fault`:

    - "error" (EIO), "enospc" (a full disk), "unreachable" (ECONNREFUSED): raised at once;
    - "stall": `seconds` of nothing, then ETIMEDOUT (a call that timed out);
    - "latency": `seconds` of delay, then the operation runs.

    Which matching calls: the first `after` pass; then each fires with `probability`
    (decided by a hash of `seed`, the path and how many times that path matched: the same
    calls fire whatever the interleaving); at most `times` fire (None: no limit). Counted
    across every process of a run when the plan has a `state_dir`."""
    op: str = "*"
    path: str = "*"
    fault: str = "error"
    after: int = 0
    times: int | None = None
    probability: float = 1.0
    seed: int = 0
    seconds: float = 0.0

    def __post_init__(self):
        problems = []
        if self.fault not in FAULT_KINDS:
            problems.append(f"fault {self.fault!r} is not one of {', '.join(FAULT_KINDS)}")
        if self.after < 0 or (self.times is not None and self.times < 0):
            problems.append("after and times must not be negative")
        if not 0.0 <= self.probability <= 1.0:
            problems.append(f"probability {self.probability} is not within [0, 1]")
        if self.seconds < 0:
            problems.append("seconds must not be negative")
        if problems:
            raise ConfigError(f"storage fault plan: {'; '.join(problems)}")

    def counts_calls(self) -> bool:
        return bool(self.after) or self.times is not None or self.probability < 1.0


@dataclass(frozen=True)
class StorageFaults:
    """Rules tried in order (the first that fires wins), and where cross-process counts live
    (`state_dir`; None: counts per process)."""
    rules: tuple[StorageFault, ...] = ()
    state_dir: str | None = None

    def __bool__(self) -> bool:
        return bool(self.rules)

    def to_dict(self) -> dict:
        return {"rules": [asdict(r) for r in self.rules], "state_dir": self.state_dir}

    @classmethod
    def from_dict(cls, data) -> StorageFaults:
        """`{"rules": [{...}, ...], "state_dir": ...}`, or just the list of rules."""
        try:
            data = {"rules": data} if isinstance(data, list) else dict(data)
            known = {f.name for f in fields(StorageFault)}
            rules = []
            for rule in data.get("rules", []):
                unknown = set(rule) - known
                if unknown:
                    raise ConfigError(f"storage fault plan: unknown rule field(s) "
                                      f"{sorted(unknown)}")
                rules.append(StorageFault(**rule))
            return cls(tuple(rules), data.get("state_dir"))
        except (ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"storage fault plan is not a list of rules: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> StorageFaults:
        try:
            return cls.from_dict(json.loads(text))
        except ValueError as exc:
            raise ConfigError(f"storage fault plan is not JSON: {exc}") from None


@dataclass(frozen=True)
class FaultPlan:
    kill_encoder_after: int | None = None    # batches a replica completes before it dies
    marker: str | None = None                # exists once the replica has died
    storage: StorageFaults = field(default_factory=StorageFaults)

    def __post_init__(self):
        if self.kill_encoder_after is not None and (self.kill_encoder_after < 0
                                                    or not self.marker):
            raise ConfigError("kill_encoder_after needs a whole number of batches and a "
                              "marker file")

    def kill_encoder_now(self, calls: int) -> bool:
        """Whether a replica receiving its `calls`-th batch dies now (then the marker exists)."""
        if self.kill_encoder_after is None or calls <= self.kill_encoder_after:
            return False
        try:
            open(self.marker, "x").close()        # one replica wins, once per run
        except FileExistsError:
            return False
        return True

    def to_json(self) -> str:
        return json.dumps({"kill_encoder_after": self.kill_encoder_after,
                           "marker": self.marker, "storage": self.storage.to_dict()})

    @classmethod
    def load(cls, path: str | Path) -> FaultPlan:
        data = json.loads(Path(path).read_text())
        return cls(data["kill_encoder_after"], data["marker"],
                   StorageFaults.from_dict(data["storage"]))


def storage_plan(rules: list[dict]) -> FaultPlan:
    """A plan of storage faults only, from rules as dicts (`StorageFault`'s fields)."""
    return FaultPlan(storage=StorageFaults.from_dict(rules))
