"""Finalize options and exports: float16 + gzip HDF5, Parquet files, the DuckDB table."""
from __future__ import annotations

import h5py
import numpy as np
import pyarrow.parquet as pq

from ray_job.config import JobConfig
from ray_job.pipeline import run


def test_float16_gzip_hdf5_with_parquet_and_duckdb_exports(local_ray, sample_path, tmp_path):
    import duckdb

    report = run(JobConfig.of(inputs=(str(sample_path),), output=str(tmp_path), limit=40,
                           precision="fp32", url_template="arxiv", storage_dtype="float16",
                           compression="gzip", exports=("parquet", "duckdb")))
    with h5py.File(tmp_path / "embeddings.h5") as h5:
        dset = h5["embeddings"]
        assert dset.dtype == np.float16 and dset.compression == "gzip"
        ids, emb = [i.decode() for i in h5["ids"][:]], dset[:].astype(np.float32)
        urls = [u.decode() for u in h5["urls"][:]]
    assert np.abs(np.linalg.norm(emb, axis=1) - 1).max() < 1e-2      # fp16 of unit vectors

    table = pq.read_table(tmp_path / "parquet")
    assert table.column_names == ["id", "url", "embedding"]
    assert table.column("id").to_pylist() == ids and table.column("url").to_pylist() == urls
    kind = table.schema.field("embedding").type
    assert kind.list_size == 384 and str(kind.value_type) == "float"
    np.testing.assert_array_equal(
        np.stack(table.column("embedding").to_numpy(zero_copy_only=False)), emb)
    assert report["exports"]["parquet"] == [str(tmp_path / "parquet" / "part-00000.parquet")]

    con = duckdb.connect(str(tmp_path / "embeddings.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 40
    kind = con.execute("SELECT data_type FROM information_schema.columns "
                       "WHERE table_name = 'embeddings' AND column_name = 'embedding'"
                       ).fetchone()[0]
    assert kind == "FLOAT[384]"
    row = con.execute("SELECT embedding FROM embeddings WHERE id = ?", [ids[7]]).fetchone()[0]
    np.testing.assert_array_equal(np.array(row, dtype=np.float32), emb[7])
    pk = con.execute("SELECT constraint_type FROM information_schema.table_constraints "
                     "WHERE table_name = 'embeddings'").fetchall()
    assert ("PRIMARY KEY",) in pk
