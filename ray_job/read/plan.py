"""The read plan of a run, frozen by its first driver: the input manifest, the block size and
the read units. A resume reuses it, so keys, shard, reject and reuse names and every count
are the same whatever the cluster size or the flags given later.

What is written (plan.json) names every input by its redacted URL, as the manifest does; the
units a driver reads with carry the URLs this run was given (`reading`), which are never
written: a re-signed URL resumes the plan made with the old signature."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..errors import UserError
from ..redact import redact_url
from .inputs import InputFile, ReadUnit, SqlSpec, plan_units
from .manifest import manifest_changes
from .plan_size import bounded_block_bytes


@dataclass(frozen=True)
class ReadPlan:
    manifest: list[dict]
    block_bytes: int
    limit: int | None
    units: list[ReadUnit]

    def to_dict(self) -> dict:
        """The plan as plan.json holds it: no URL's secrets."""
        return {"manifest": self.manifest, "block_bytes": self.block_bytes, "limit": self.limit,
                "units": [{**asdict(u), "path": redact_url(u.path)} for u in self.units]}

    def reading(self, files: list[InputFile]) -> ReadPlan:
        """The plan with each unit's file as this run names it (`files`, in manifest order:
        check_resume found them the same inputs), the URL the readers open."""
        return replace(self, units=[replace(u, path=files[u.file_index].path)
                                    for u in self.units])

    @classmethod
    def from_dict(cls, data: dict) -> ReadPlan:
        return cls(data["manifest"], data["block_bytes"], data["limit"],
                   [ReadUnit(**u) for u in data["units"]])


def frozen_plan(run_dir) -> ReadPlan | None:
    """The plan the run directory `run_dir` (a RunDir) froze; None before it has one."""
    found = run_dir.load_plan()
    return ReadPlan.from_dict(found) if found else None


def check_resume(old: ReadPlan | None, manifest: list[dict], limit: int | None, where: str) -> None:
    """Refuse (one line, nothing changed) a resume whose inputs changed or whose --limit
    would drop rows the run already holds."""
    if old is None:
        return
    changes = manifest_changes(old.manifest, manifest)
    if changes:
        more = f"; and {len(changes) - 3} more" if len(changes) > 3 else ""
        shown = "; ".join(changes[:3]) + more
        raise UserError(f"the inputs of {where} changed since it started: {shown}. Use --fresh "
                        f"to start over, or a new --output with --previous {where} to embed "
                        f"only new and changed papers")
    if _covers_less(limit, old.limit):
        holds = "every row" if old.limit is None else f"up to {old.limit:,} rows"
        raise UserError(f"{where} already holds {holds}; --limit {limit:,} would drop some: "
                        f"use the same or a larger --limit, --fresh, or another --output")


def _covers_less(new: int | None, old: int | None) -> bool:
    return new is not None and (old is None or new < old)


def resolve_plan(old: ReadPlan | None, files: list[InputFile], manifest: list[dict],
                 block_bytes: int, limit: int | None, sql: SqlSpec) -> ReadPlan:
    """The plan of this run: the frozen one (re-cut with its own block size when a larger
    --limit reaches further), or a new one on a first run; its units name `files`."""
    if old is not None:
        if old.limit == limit:
            return old.reading(files)
        block_bytes = old.block_bytes
    else:
        block_bytes = bounded_block_bytes(files, block_bytes)
    return ReadPlan(manifest, block_bytes, limit, plan_units(files, block_bytes, limit, sql))
