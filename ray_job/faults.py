"""Test-only fault injection, kept out of the job config.

The tests ask for a fault through environment variables of the driver process:

    RAY_EMBED_FAULT_KILL_ENCODER_AFTER=N   an encoder process exits hard (os._exit) when it
                                           receives its (N+1)-th batch ...
    RAY_EMBED_FAULT_MARKER=PATH            ... once per run: the first replica to get there
                                           creates PATH, and no replica dies while it exists.
    RAY_EMBED_FAULT_STORAGE=JSON           storage faults (`StorageFaults.from_json`): rules
                                           for the door to stored files (storage/files.py)
                                           to fail, slow down or stall matching operations.

`faults_from_environment` reads them, on the driver and nowhere else; the result travels to the
replicas and read, tokenize and write tasks as plain data (constructor and task arguments), so
it does not depend on what environment a Ray worker inherits. In-process tests give storage
faults to `storage.injection.injected` instead of the environment.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Mapping

from .errors import ConfigError

KILL_ENCODER_AFTER_ENV = "RAY_EMBED_FAULT_KILL_ENCODER_AFTER"
MARKER_ENV = "RAY_EMBED_FAULT_MARKER"
STORAGE_ENV = "RAY_EMBED_FAULT_STORAGE"

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
    across every process of a run (in the plan's `state_dir`, which the driver's
    `injected` makes when there is none); an `Injector` made without one counts alone."""
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
            raise ConfigError(f"{STORAGE_ENV}: {'; '.join(problems)}")


@dataclass(frozen=True)
class StorageFaults:
    """A schedule of storage faults: rules tried in order (the first that fires wins), and
    where cross-process counts live (`state_dir`; None: counts per injection scope)."""
    rules: tuple[StorageFault, ...] = ()
    state_dir: str | None = None

    def __bool__(self) -> bool:
        return bool(self.rules)

    def to_json(self) -> str:
        return json.dumps({"rules": [asdict(r) for r in self.rules], "state_dir": self.state_dir})

    @classmethod
    def from_json(cls, text: str) -> "StorageFaults":
        """`{"rules": [{...}, ...], "state_dir": ...}`, or just the list of rules."""
        try:
            data = json.loads(text)
            data = {"rules": data} if isinstance(data, list) else dict(data)
            known = {f.name for f in fields(StorageFault)}
            rules = []
            for rule in data.get("rules", []):
                unknown = set(rule) - known
                if unknown:
                    raise ConfigError(f"{STORAGE_ENV}: unknown rule field(s) {sorted(unknown)}")
                rules.append(StorageFault(**rule))
            return cls(tuple(rules), data.get("state_dir"))
        except (ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{STORAGE_ENV} is not a JSON list of rules: {exc}") from None


NO_STORAGE_FAULTS = StorageFaults()


@dataclass(frozen=True)
class Faults:
    kill_encoder_after: int | None = None    # batches an encoder completes before it dies
    marker: str | None = None                # exists once the fault has happened
    storage: StorageFaults = field(default=NO_STORAGE_FAULTS)

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
    storage = environ.get(STORAGE_ENV)
    storage = StorageFaults.from_json(storage) if storage else NO_STORAGE_FAULTS
    if after is None:
        return Faults(storage=storage) if storage else NO_FAULTS
    if not after.strip().isdigit() or not marker:
        raise ConfigError(f"{KILL_ENCODER_AFTER_ENV} needs a whole number of batches and "
                          f"{MARKER_ENV} a file path; got {after!r} and {marker!r}")
    return Faults(int(after), marker, storage)
