"""Exports of a finished embeddings.h5, read in chunks: Parquet files and a DuckDB table."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

EXPORTS = ("parquet", "duckdb")
CHUNK_ROWS = 50_000
# the Hub's dataset viewer reads Parquet files of a few hundred MB comfortably
PARQUET_FILE_BYTES = 256 * 2**20


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


def export_parquet(h5_path: Path, directory: Path) -> list[Path]:
    """id, url (when the run has urls), embedding as fixed-size list; files of ~256 MB."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("part-*.parquet"):
        old.unlink()
    files: list[Path] = []
    writer, written = None, 0
    for table in h5_chunks(h5_path):
        if writer is None or written >= PARQUET_FILE_BYTES:
            if writer:
                writer.close()
            files.append(directory / f"part-{len(files):05d}.parquet")
            writer, written = pq.ParquetWriter(str(files[-1]) + ".tmp", table.schema), 0
        writer.write_table(table, row_group_size=10_000)
        written += table.nbytes
    if writer:
        writer.close()
    for f in files:
        os.replace(str(f) + ".tmp", f)
    return files


def export_duckdb(h5_path: Path, db_path: Path) -> Path:
    """The Semantic Scholar notebook's table: embeddings(id VARCHAR PRIMARY KEY, embedding FLOAT[D])."""
    import duckdb

    tmp = db_path.with_name(db_path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with h5py.File(h5_path, "r") as h5:
        dim = h5["embeddings"].shape[1]
    con = duckdb.connect(str(tmp))
    con.execute(f"CREATE TABLE embeddings (id VARCHAR PRIMARY KEY, embedding FLOAT[{dim}])")
    for chunk in h5_chunks(h5_path):
        chunk = chunk.select(["id", "embedding"])
        con.register("chunk", chunk)
        con.execute(f"INSERT INTO embeddings SELECT id, embedding::FLOAT[{dim}] FROM chunk")
        con.unregister("chunk")
    con.close()
    os.replace(tmp, db_path)
    return db_path


def run_exports(out_dir: Path, names: tuple[str, ...]) -> dict[str, list[str]]:
    h5_path = out_dir / "embeddings.h5"
    done: dict[str, list[str]] = {}
    if "parquet" in names:
        done["parquet"] = [str(p) for p in export_parquet(h5_path, out_dir / "parquet")]
    if "duckdb" in names:
        done["duckdb"] = [str(export_duckdb(h5_path, out_dir / "embeddings.duckdb"))]
    return done
