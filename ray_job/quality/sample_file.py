"""RUN/quality/sample.arrow: the quality sample's rows (h5 row, key, id, label, title,
vector), so that `compare` can set two runs' samples side by side without reading either
corpus again. Written by finalize with report.json; at most SAMPLE_BYTES of vectors."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from ..rundir.layout import QUALITY_SAMPLE
from ..rundir.rundir import RunDir


@dataclass
class SampleFile:
    rows: np.ndarray
    ids: list[str]
    labels: list[str | None]
    titles: list[str | None]
    vectors: np.ndarray


def write_sample(run_dir: RunDir, sample: SampleFile, keys: np.ndarray) -> None:
    dim = sample.vectors.shape[1] if sample.vectors.ndim == 2 else 0
    flat = pa.array(np.ascontiguousarray(sample.vectors, np.float32).ravel())
    table = pa.table({"row": pa.array(sample.rows, pa.int64()), "key": pa.array(keys, pa.int64()),
                      "id": pa.array(sample.ids, pa.string()),
                      "label": pa.array(sample.labels, pa.string()),
                      "title": pa.array(sample.titles, pa.string()),
                      "vector": pa.FixedSizeListArray.from_arrays(flat, max(dim, 1))
                      if dim else pa.nulls(len(sample.ids), pa.list_(pa.float32(), 1))})
    with tempfile.TemporaryDirectory(prefix="ray-embed-quality-") as tmp:
        path = Path(tmp) / "sample.arrow"
        with ipc.new_file(str(path), table.schema) as writer:
            writer.write_table(table)
        run_dir.results.put(path, QUALITY_SAMPLE)


def read_sample(run_dir: RunDir) -> SampleFile | None:
    """The run's sample; None when finalize wrote none (a run from before the quality pass)."""
    if not run_dir.results.has(QUALITY_SAMPLE):
        return None
    with pa.memory_map(str(run_dir.results.local(QUALITY_SAMPLE))) as source:
        table = ipc.open_file(source).read_all()
    vectors = table.column("vector").combine_chunks()
    dim = vectors.type.list_size
    matrix = vectors.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32)
    return SampleFile(table.column("row").to_numpy(), table.column("id").to_pylist(),
                      table.column("label").to_pylist(), table.column("title").to_pylist(),
                      matrix)
