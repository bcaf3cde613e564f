"""`open_run(PATH_OR_URL)`: a finished run (local or in object storage) read from Python.

A run is finished when its report.json is there (written last: a reader that sees it sees the
rest) beside its job.json and embeddings.h5. A remote run's embeddings.h5 is read from a local
copy in this user's cache (`RunDir.results.local`), fetched once and again when it changes.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError
from ..rundir.job import JobRecord
from ..rundir.layout import H5, REPORT
from ..rundir.rundir import RunDir
from .columns import H5Column, Rows, is_row
from .tables import rows_table

if TYPE_CHECKING:
    import pandas
    import pyarrow

    from ..search.hits import Hit


def open_run(location: str | Path) -> FinishedRun:
    """The finished run at `location` (a folder, or an fsspec URL such as s3://bucket/run).
    A location that is not a finished run is a one-line `UserError` saying why."""
    run_dir = RunDir.at(location)
    job = run_dir.load_job()            # not a run directory: one line
    if not run_dir.results.has(REPORT):
        raise UserError(f"{run_dir.url} is not a finished run (no {REPORT}: run or finalize "
                        f"it first)")
    if not run_dir.results.has(H5):
        raise UserError(f"{run_dir.url} is not a finished run (no {H5})")
    return FinishedRun(run_dir, job)


class FinishedRun:
    """A finished run: `ids`, `vectors` (and `urls` where the run has them) read lazily from
    embeddings.h5, row for row; `report` and `job` (report.json, job.json); `search` and
    `similar` (the same hits as `ray-embed search` / `ray-embed similar`); `to_arrow` /
    `to_pandas` of a range of rows."""

    def __init__(self, run_dir: RunDir, job: JobRecord):
        self.run_dir, self.job = run_dir, job

    def with_report(self, report: dict) -> FinishedRun:
        """This run with `report` as its report (the driver's: report.json plus what came
        after it, such as the upload's)."""
        self.__dict__["report"] = report
        return self

    def __repr__(self) -> str:
        return f"FinishedRun({self.location!r}, rows={len(self)}, model={self.job.model.name!r})"

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def location(self) -> str:
        return self.run_dir.url

    @cached_property
    def report(self) -> dict:
        """report.json: counts, timings, the device and precision it ran with."""
        return self.run_dir.load_report()

    @property
    def quality(self) -> dict | None:
        """report.json's quality section (`ray-embed report`): norms, spread, texts cut,
        label agreement and the verdict; None for a run finalized before it was measured."""
        return self.report.get("quality")

    @cached_property
    def h5_path(self) -> Path:
        """A local readable embeddings.h5 (the file itself for a local run)."""
        return self.run_dir.results.local(H5)

    @cached_property
    def ids(self) -> H5Column:
        """The papers' ids, row by row (`str`)."""
        return H5Column(self.h5_path, "ids")

    @cached_property
    def vectors(self) -> H5Column:
        """The embeddings, row by row: `vectors[a:b]` is a float32 array [b - a, dim];
        `vectors.chunks(n)` iterates over them n rows at a time."""
        return H5Column(self.h5_path, "embeddings")

    @cached_property
    def urls(self) -> H5Column | None:
        """The papers' urls (a run with a url template), else None."""
        import h5py

        with h5py.File(self.h5_path, "r") as h5:
            has_urls = "urls" in h5
        return H5Column(self.h5_path, "urls") if has_urls else None

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def search(self, query: str, k: int = 10, prompt: str | None = None,
               prompt_name: str | None = None) -> list[Hit]:
        """The k papers nearest to `query`, embedded as the run embeds a query (its model's
        query side and query prompt; `prompt` / `prompt_name` instead of it)."""
        from ..search.search import search

        check_k(k)
        if prompt is not None and prompt_name is not None:
            raise UserError("prompt and prompt_name both say which query prompt to use: give one")
        return search(self.location, [query], k, prompt, prompt_name)[0]

    def similar(self, paper_id: str, k: int = 10) -> list[Hit]:
        """The k papers nearest to the run's paper `paper_id` (itself left out)."""
        from ..search.similar import similar

        check_k(k)
        return similar(self.location, paper_id, k)

    def to_arrow(self, rows: Rows = slice(None)) -> pyarrow.Table:
        """The rows asked for (a slice, a row or a list of rows) as a table: `id`, `url`
        (where the run has urls) and `embedding` (fixed-size list of float32)."""
        return rows_table(self.ids, self.urls, self.vectors, _as_rows(rows))

    def to_pandas(self, rows: Rows = slice(None)) -> pandas.DataFrame:
        """`to_arrow(rows)` as a pandas DataFrame (`embedding`: one numpy array a row)."""
        return self.to_arrow(rows).to_pandas()


def check_k(k: int) -> None:
    if not isinstance(k, int) or k < 1:
        raise UserError(f"k must be at least 1; got {k!r}")


def _as_rows(rows: Rows) -> slice | Sequence[int]:
    """A single row is a table of one row."""
    if is_row(rows):
        return [int(rows)]
    return rows
