"""Lazy columns of embeddings.h5: rows are read from the file when asked for, never all at
once unless asked for all."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Union

import h5py
import numpy as np

Rows = Union[int, slice, "np.ndarray", list]
CHUNK_ROWS = 65536


class H5Column:
    """One dataset of embeddings.h5 (`ids`, `urls` or `embeddings`) as a read-only sequence:
    `len(col)`, `col[i]`, `col[a:b]`, `col[[i, j, ...]]` and `col.chunks(n)` each open the
    file, read just those rows and close it. Ids and urls come back as `str`, vectors as
    float32 (whatever the file's storage dtype)."""

    def __init__(self, h5_path: Path, name: str):
        self.path, self.name = Path(h5_path), name
        with h5py.File(self.path, "r") as h5:
            dset = h5[name]
            self.shape: tuple[int, ...] = tuple(dset.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"H5Column({self.name!r}, rows={len(self)}, file={str(self.path)!r})"

    def __getitem__(self, rows: Rows):
        with h5py.File(self.path, "r") as h5:
            return self._convert(self._read(h5[self.name], rows), scalar=is_row(rows))

    def __iter__(self) -> Iterator:
        for chunk in self.chunks():
            yield from chunk

    def chunks(self, rows: int = CHUNK_ROWS, start: int = 0,
               stop: int | None = None) -> Iterator:
        """The rows from `start` to `stop`, `rows` at a time (an array or a list of str)."""
        if rows < 1:
            raise ValueError(f"rows must be at least 1; got {rows}")
        stop = len(self) if stop is None else min(stop, len(self))
        with h5py.File(self.path, "r") as h5:
            dset = h5[self.name]
            for begin in range(start, stop, rows):
                yield self._convert(dset[begin:min(begin + rows, stop)], scalar=False)

    def _read(self, dset: h5py.Dataset, rows: Rows):
        if is_row(rows):
            index = int(rows)
            if not -len(self) <= index < len(self):
                raise IndexError(f"row {index} is out of range ({len(self)} rows)")
            return dset[index % len(self)]
        if isinstance(rows, slice):
            start, stop, step = rows.indices(len(self))
            if step == 1:
                return dset[start:max(start, stop)]
            rows = np.arange(start, stop, step)
        if len(rows) == 0:
            return dset[0:0]
        wanted = np.asarray(rows, dtype=np.int64) % max(len(self), 1)
        order = np.argsort(wanted, kind="stable")      # h5py reads increasing, unique rows
        unique, inverse = np.unique(wanted[order], return_inverse=True)
        values = dset[unique][inverse]
        out = np.empty_like(values)
        out[order] = values
        return out

    def _convert(self, values, scalar: bool):
        if self.name == "embeddings":
            return np.asarray(values, dtype=np.float32)
        if scalar:
            return values.decode("utf-8", "surrogatepass")
        return [v.decode("utf-8", "surrogatepass") for v in values]


def is_row(rows: Rows) -> bool:
    return isinstance(rows, (int, np.integer))
