"""DuckDB input, as the Semantic Scholar notebook read it: a table keyed by corpusid."""
from __future__ import annotations

import h5py
import pytest

from ray_job.config import JobConfig
from ray_job.errors import UserError
from ray_job.pipeline import run
from ray_job.read.inputs import SqlSpec, plan_units, resolve_inputs
from ray_job.read.readers import read_unit


def test_key_range_units_read_every_row_once_in_key_order(papers_db, monkeypatch):
    monkeypatch.setattr("ray_job.read.inputs.SQL_ROWS_PER_UNIT", 64)
    files = resolve_inputs([str(papers_db)])
    units = plan_units(files, 0, None, SqlSpec("corpusid", table="papers_with_abstracts"))
    assert len(units) == 16
    keys = [pos for u in units for pos, _ in read_unit(u)]
    assert keys == [1000 + 7 * i for i in range(1000)]
    limited = plan_units(files, 0, 10,
                         SqlSpec("corpusid", query="SELECT * FROM papers_with_abstracts"))
    assert [pos for u in limited for pos, _ in read_unit(u)] == [1000 + 7 * i for i in range(10)]


# slow: ~14 s; a DuckDB run end to end in the default suite:
# test_duckdb_keys::test_a_run_embeds_300_and_rejects_1
@pytest.mark.slow
def test_duckdb_table_embeds_like_the_jsonl_file(local_ray, papers_db, sample_path, tmp_path):
    run(JobConfig.of(inputs=(str(papers_db),), table="papers_with_abstracts", id_field="corpusid",
                  output=str(tmp_path / "db"), limit=50, precision="fp32"))
    run(JobConfig.of(inputs=(str(sample_path),), output=str(tmp_path / "jsonl"), limit=50,
                  precision="fp32"))
    with h5py.File(tmp_path / "db" / "embeddings.h5") as db, \
            h5py.File(tmp_path / "jsonl" / "embeddings.h5") as js:
        assert db["ids"][:].tolist() == [str(1000 + 7 * i).encode() for i in range(50)]
        assert abs(db["embeddings"][:] - js["embeddings"][:]).max() < 1e-5


def test_duckdb_mistakes_are_user_errors(papers_db):
    files = resolve_inputs([str(papers_db)])
    with pytest.raises(UserError, match="--table NAME or --query"):
        plan_units(files, 0, None, SqlSpec("corpusid"))
    with pytest.raises(UserError, match="must be an integer column"):
        plan_units(files, 0, None, SqlSpec("title", table="papers_with_abstracts"))
    with pytest.raises(UserError, match="DuckDB: Catalog Error"):
        plan_units(files, 0, None, SqlSpec("corpusid", table="nope"))
