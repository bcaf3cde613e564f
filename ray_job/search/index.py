"""`ray-embed index RUN` (and `--index` on run / finalize): the run's ANN index, in RUN/index/.

    index/ann.faiss      the faiss index over embeddings.h5's rows (ids = row numbers)
    index/titles.arrow   the papers' titles, row by row, where the inputs had them
    index/index.json     how it was made, and the fingerprint of the embeddings.h5 it holds

index.json is written last: an index is current when its fingerprint is that of the run's
embeddings.h5 now (for a local run whose embeddings.h5 has not been replaced since the index
was built, its file status says so without reading it). Building again with a current index
does nothing.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py

from ..read.plan import ReadPlan
from ..rundir.fingerprint import h5_fingerprint, stat_key
from ..rundir.job import JobRecord, now_iso
from ..rundir.layout import H5, INDEX_ANN, INDEX_INFO, INDEX_TITLES
from ..rundir.rundir import RunDir
from . import ann, compact
from .titles import write_titles


def result_h5(run_dir: RunDir) -> Path:
    """A local copy of the run's embeddings.h5 (one line if the run has none yet)."""
    return run_dir.results.local(H5)


def stored_info(run_dir: RunDir) -> dict | None:
    if not (run_dir.results.has(INDEX_INFO) and run_dir.results.has(INDEX_ANN)):
        return None
    return json.loads(run_dir.results.read_text(INDEX_INFO))


def build_index(run_dir: RunDir | str | Path, force: bool = False, vectors: str = "float32",
                truncate_dim: int | None = None) -> dict:
    """Build RUN/index/ unless it is current; returns index.json's record plus `rebuilt`.
    `vectors`: float32, or the compact int8 / binary codes (of the first `truncate_dim`
    dims); an index of other vectors than asked for is built again."""
    run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir.at(run_dir)
    h5 = result_h5(run_dir)
    info = stored_info(run_dir)
    fingerprint = None
    kind = {"vectors": vectors, "truncate_dim": truncate_dim or 0}
    if info and not force and _kind(info) == kind:
        if _unchanged_file(run_dir, info, h5):
            return {**info, "rebuilt": False}
        fingerprint = h5_fingerprint(h5)
        if info.get("fingerprint") == fingerprint:
            return {**info, "rebuilt": False}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ray-embed-index-") as tmp:
        local = Path(tmp)
        plan = run_dir.load_plan()
        info = _make_files(h5, run_dir.load_job(), local,
                           ReadPlan.from_dict(plan) if plan else None, kind)
        info.update(fingerprint=fingerprint or h5_fingerprint(h5),
                    h5_stat=_local_stat(run_dir, h5), built=now_iso(),
                    build_s=round(time.monotonic() - started, 2))
        (local / "index.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        run_dir.results.put(local / "ann.faiss", INDEX_ANN)
        if info["titles"]:
            run_dir.results.put(local / "titles.arrow", INDEX_TITLES)
        run_dir.results.put(local / "index.json", INDEX_INFO)      # last: the index is current
    return {**info, "rebuilt": True}


def _kind(info: dict) -> dict:
    """Which vectors an index holds (an index.json from before compact indexes: float32)."""
    return {"vectors": info.get("vectors", "float32"), "truncate_dim": info.get("truncate_dim", 0)}


def _make_files(h5: Path, job: JobRecord, local: Path, plan: ReadPlan | None = None,
                kind: dict | None = None) -> dict:
    """ann.faiss and (where the inputs have them) titles.arrow in `local`; their facts."""
    kind = kind or {"vectors": "float32", "truncate_dim": 0}
    with h5py.File(h5, "r") as f:
        rows, dim = f["embeddings"].shape
    if kind["vectors"] == "float32":
        spec = asdict(ann.choose_spec(rows))
        ann.save(ann.build(h5, ann.AnnSpec(**spec)), local / "ann.faiss")
    else:
        index, facts = compact.build(h5, kind["vectors"], kind["truncate_dim"] or None)
        compact.save(index, kind["vectors"], local / "ann.faiss")
        spec = {"nlist": 0, "nprobe": 0, **facts, "rescore": compact.RESCORE[kind["vectors"]]}
    has_titles = write_titles(h5, job, local / "titles.arrow", plan)
    return {"rows": int(rows), "dim": int(dim), **spec, **kind, "metric": "cosine",
            "library": f"faiss-cpu {_faiss_version()}", "titles": has_titles}


def is_current(run_dir: RunDir, info: dict, h5: Path) -> bool:
    return _unchanged_file(run_dir, info, h5) or info.get("fingerprint") == h5_fingerprint(h5)


def _unchanged_file(run_dir: RunDir, info: dict, h5: Path) -> bool:
    """The local embeddings.h5 the index was built from, not replaced since."""
    stat = _local_stat(run_dir, h5)
    return stat is not None and info.get("h5_stat") == stat


def _local_stat(run_dir: RunDir, h5: Path) -> str | None:
    """A remote run's local copy is fetched anew each time: its status says nothing."""
    return None if run_dir.is_remote else stat_key(h5)


def _faiss_version() -> str:
    import faiss

    return faiss.__version__


@dataclass
class LoadedIndex:
    """An index opened for searching, and the titles file that goes with it."""
    index: object
    titles: Path | None = None
    info: dict | None = None          # index.json (None: a float32 index)

    @classmethod
    def open(cls, run_dir: RunDir, info: dict) -> LoadedIndex:
        path = run_dir.results.local(INDEX_ANN)
        vectors = _kind(info)["vectors"]
        if vectors == "float32":
            index = ann.load(path, ann.AnnSpec(info["factory"], info["nlist"], info["nprobe"]))
        else:
            index = compact.load(path, vectors)
        return cls(index, run_dir.results.local(INDEX_TITLES) if info.get("titles") else None,
                   info)

    @property
    def is_compact(self) -> bool:
        return bool(self.info) and _kind(self.info)["vectors"] != "float32"

    def rescore(self, default: int) -> int:
        """Candidates per hit to score exactly."""
        return int(self.info.get("rescore", default)) if self.is_compact else default

    def candidates(self, queries, n: int):
        """Row numbers [q, n] of the approximate nearest rows (-1 where fewer exist)."""
        if self.is_compact:
            return compact.candidates(self.index, self.info, queries, n)
        return ann.candidates(self.index, queries, n)


def current_index(run_dir: RunDir, h5: Path) -> LoadedIndex | None:
    """The run's index when it holds exactly `h5`'s vectors; None (with a one-line note when
    there is a stale one) otherwise."""
    info = stored_info(run_dir)
    if info is None:
        return None
    if not is_current(run_dir, info, h5):
        print(f"ray-embed: the index of {run_dir.url} is out of date (embeddings.h5 "
              f"changed): exact scan; `ray-embed index` rebuilds it", file=sys.stderr)
        return None
    return LoadedIndex.open(run_dir, info)


def format_build(info: dict) -> str:
    what = "built" if info["rebuilt"] else "up to date"
    kind = "exact (flat)" if not info["nlist"] else f"{info['factory']}, nprobe {info['nprobe']}"
    if _kind(info)["vectors"] != "float32":
        cut = f", first {info['truncate_dim']} dims" if info["truncate_dim"] else ""
        kind = f"{info['vectors']} codes{cut}, {info['rescore']} x k rescored exactly"
    line = f"index {what}: {info['rows']:,} vectors (dim {info['dim']}), {kind}"
    if info["rebuilt"]:
        line += f", {info['build_s']:.1f} s"
    return line + ("" if info.get("titles") else "; no titles")
