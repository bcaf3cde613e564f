"""Exports of a finished embeddings.h5, read in chunks: Parquet files (with the map's x, y
and label when the run has a current map), a DuckDB table, the compact int8 / binary
vectors (quantize.py) and a LanceDB table (lance_export.py).

With `--drop-duplicates` every export leaves out the rows the run's dedup drops
(`DroppedRows`: a bitmap, 1 bit per row of embeddings.h5), so it keeps one paper per
component of near duplicates; embeddings.h5 itself keeps every row."""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..rundir.layout import DEDUP_INFO, DEDUP_PAIRS, DUCKDB, H5, PARQUET
from ..rundir.map_state import current_info, read_coords
from ..rundir.rundir import RunDir
from .bitmap import bits_of

CHUNK_ROWS = 50_000
# the Hub's dataset viewer reads Parquet files of a few hundred MB comfortably
PARQUET_FILE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class DroppedRows:
    """Rows of embeddings.h5 the exports leave out: a bitmap (np.packbits order)."""
    bits: np.ndarray
    count: int

    @classmethod
    def of(cls, rows: np.ndarray, total: int) -> DroppedRows:
        mask = np.zeros(total, bool)
        mask[np.asarray(rows, np.int64)] = True
        return cls(np.packbits(mask), int(mask.sum()))

    def kept(self, start: int, n: int) -> np.ndarray:
        """bool per row start .. start + n - 1: True where the row is kept."""
        return ~bits_of(self.bits, start, n)


def without_dropped(chunks: Iterator[pa.Table],
                    dropped: DroppedRows | None) -> Iterator[pa.Table]:
    """Each chunk (consecutive rows from the first) less its dropped rows."""
    start = 0
    for table in chunks:
        n = table.num_rows
        yield table if dropped is None else table.filter(pa.array(dropped.kept(start, n)))
        start += n


def h5_chunks(h5_path: Path) -> Iterator[pa.Table]:
    with h5py.File(h5_path, "r") as h5:
        ids, emb = h5["ids"], h5["embeddings"]
        urls = h5["urls"] if "urls" in h5 else None
        for start in range(0, len(ids), CHUNK_ROWS):
            stop = start + CHUNK_ROWS
            matrix = np.ascontiguousarray(emb[start:stop], dtype=np.float32)
            columns = {"id": pa.array([i.decode() for i in ids[start:stop]], pa.string())}
            if urls is not None:
                columns["url"] = pa.array([u.decode() for u in urls[start:stop]], pa.string())
            columns["embedding"] = pa.FixedSizeListArray.from_arrays(
                pa.array(matrix.reshape(-1)), matrix.shape[1])
            yield pa.table(columns)


def with_map(chunks: Iterator[pa.Table], coords: pa.Table | None) -> Iterator[pa.Table]:
    """Each chunk with the map's columns (map_x, map_y, map_label) of its rows added."""
    start = 0
    for table in chunks:
        if coords is not None:
            part = coords.slice(start, table.num_rows)
            for name in ("x", "y", "label"):
                table = table.append_column(f"map_{name}", part.column(name))
        start += table.num_rows
        yield table


def current_coords(run_dir: RunDir, h5_path: Path) -> pa.Table | None:
    return read_coords(run_dir) if current_info(run_dir, h5_path) else None


def export_parquet(h5_path: Path, run_dir: RunDir,
                   dropped: DroppedRows | None = None) -> list[str]:
    """id, url (when the run has urls), embedding as fixed-size list, and the map's columns
    when the run has a current map; files of ~256 MB."""
    for old in run_dir.results.names(PARQUET):
        run_dir.results.remove(old)
    names: list[str] = []
    chunks = without_dropped(with_map(h5_chunks(h5_path), current_coords(run_dir, h5_path)),
                             dropped)
    table = next(chunks, None)
    while table is not None:
        names.append(f"{PARQUET}/part-{len(names):05d}.parquet")
        with run_dir.results.writer(names[-1]) as tmp:
            table = _write_parquet_file(tmp, table, chunks)
    return names


def _write_parquet_file(path: Path, first: pa.Table, chunks: Iterator[pa.Table]) -> pa.Table | None:
    """Write `first` and following chunks until the file is ~256 MB; returns the next chunk."""
    written = 0
    with pq.ParquetWriter(str(path), first.schema) as writer:
        table = first
        while table is not None and written < PARQUET_FILE_BYTES:
            writer.write_table(table, row_group_size=10_000)
            written += table.nbytes
            table = next(chunks, None)
    return table


def export_duckdb(h5_path: Path, run_dir: RunDir, dropped: DroppedRows | None = None) -> str:
    """The Semantic Scholar notebook's table:
    embeddings(id VARCHAR PRIMARY KEY, embedding FLOAT[D])."""
    import duckdb

    with h5py.File(h5_path, "r") as h5:
        dim = h5["embeddings"].shape[1]
    with run_dir.results.writer(DUCKDB) as tmp:
        con = duckdb.connect(str(tmp))
        con.execute(f"CREATE TABLE embeddings (id VARCHAR PRIMARY KEY, embedding FLOAT[{dim}])")
        for chunk in without_dropped(h5_chunks(h5_path), dropped):
            chunk = chunk.select(["id", "embedding"])
            con.register("chunk", chunk)
            con.execute(f"INSERT INTO embeddings SELECT id, embedding::FLOAT[{dim}] FROM chunk")
            con.unregister("chunk")
        con.close()
    return DUCKDB


def run_exports(run_dir: RunDir, names: tuple[str, ...], truncate_dim: int | None = None,
                dropped: DroppedRows | None = None) -> dict:
    """The exports asked for, from the run's embeddings.h5; names of the files made.
    `truncate_dim`: the int8 / binary exports keep that many dims. `dropped`: rows every
    export leaves out (near duplicates); then `dropped_duplicates` says how many."""
    from .lance_export import export_lance
    from .quantize import export_compact

    done: dict = {}
    if not names:
        return done
    h5_path = run_dir.results.local(H5)
    if "parquet" in names:
        done["parquet"] = [run_dir.child_url(n)
                           for n in export_parquet(h5_path, run_dir, dropped)]
    if "duckdb" in names:
        done["duckdb"] = [run_dir.child_url(export_duckdb(h5_path, run_dir, dropped))]
    for precision in ("int8", "binary"):
        if precision in names:
            made = export_compact(h5_path, run_dir, precision, truncate_dim, dropped)
            done[precision] = [run_dir.child_url(made)]
    if "lance" in names:
        done["lance"] = [run_dir.child_url(export_lance(h5_path, run_dir, dropped))]
    if dropped is not None:
        done["dropped_duplicates"] = dropped.count
    return done


def refresh_parquet(run_dir: RunDir) -> list[str]:
    """Write the Parquet export again when the run has one (the map it carries changed),
    leaving out the same near duplicates when the run's exports dropped them."""
    if not run_dir.results.names(PARQUET):
        return []
    dropped = None
    if "dropped_duplicates" in run_dir.load_report().get("exports", {}):
        dropped = dedup_dropped(run_dir)
    return export_parquet(run_dir.results.local(H5), run_dir, dropped)


def dedup_dropped(run_dir: RunDir) -> DroppedRows:
    """The rows the run's dedup (RUN/dedup/pairs.parquet) drops, as a bitmap."""
    info = json.loads(run_dir.results.read_text(DEDUP_INFO))
    table = pq.read_table(run_dir.results.local(DEDUP_PAIRS), columns=["row"])
    return DroppedRows.of(table.column("row").to_numpy(), info["rows"])
