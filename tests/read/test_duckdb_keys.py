"""DuckDB inputs: the key column keys the rows, so a repeated key value must not lose a row
silently, and --query must give the same rows every time a read task runs it."""
from __future__ import annotations

import duckdb
import pytest

from ray_job.config import JobConfig
from ray_job.errors import ConfigError
from ray_job.read.inputs import SqlSpec, plan_units, resolve_inputs
from ray_job.read.keys import make_key
from ray_job.read.readers import read_unit
from ray_job.read.sources import rows_from_unit
from ray_job.read.text import TextTemplate

TEMPLATE = TextTemplate("{title}{sep}{abstract}")


def make_db(path, rows):
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t (id BIGINT, title VARCHAR, abstract VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    con.close()
    return path


def rows_301(order=1):
    """300 papers keyed 0..299, and a 301st that repeats key 150 (in either insert order)."""
    rows = [(i, f"title {i}", f"abstract {i}") for i in range(300)]
    rows.append((150, "another title 150", "another abstract 150"))
    return rows[::order]


def read_all(db, done_keys=None):
    units = plan_units(resolve_inputs([str(db)]), 0, None, SqlSpec("id", table="t"))
    results = [rows_from_unit(u, TEMPLATE, "id", done_keys) for u in units]
    texts = {i: t for r in results for i, t in zip(r.table.column("id").to_pylist(),
                                                   r.table.column("text").to_pylist(), strict=True)}
    return texts, [j for r in results for j in r.rejects]


def test_each_extra_row_of_a_repeated_key_is_rejected_as_duplicate_key(tmp_path):
    texts, rejects = read_all(make_db(tmp_path / "a.db", rows_301()))
    assert len(texts) == 300 and sorted(map(int, texts)) == list(range(300))
    [reject] = rejects
    assert reject["reason"] == "duplicate_key" and reject["id"] == "150"
    assert reject["key"] == make_key(0, 150) and "2 rows" in reject["detail"]


def test_which_row_is_kept_does_not_depend_on_the_tables_order(tmp_path):
    forward, _ = read_all(make_db(tmp_path / "a.db", rows_301(1)))
    backward, _ = read_all(make_db(tmp_path / "b.db", rows_301(-1)))
    assert forward == backward


def test_a_resume_keeps_the_duplicate_reject_of_a_key_already_embedded(tmp_path):
    import numpy as np

    done = np.array([make_key(0, i) for i in range(300)], dtype=np.int64)
    texts, rejects = read_all(make_db(tmp_path / "a.db", rows_301()), done)
    assert texts == {} and [r["reason"] for r in rejects] == ["duplicate_key"]


def test_a_run_embeds_300_and_rejects_1(local_ray, tmp_path):
    from ray_job.pipeline import run

    db = make_db(tmp_path / "a.db", rows_301())
    report = run(JobConfig.of(inputs=(str(db),), table="t", output=str(tmp_path / "o"),
                              precision="fp32"))
    assert report["rows_embedded"] == 300
    assert report["rejected_by_reason"] == {"duplicate_key": 1}


@pytest.mark.parametrize("query, problem", [
    ("SELECT * FROM t; DROP TABLE t", "one SELECT statement"),
    ("SELECT * FROM t;; SELECT * FROM t", "one SELECT statement"),
    ("DELETE FROM t", "one SELECT statement"),
    ("SELEC oops", "syntax error"),
    ("SELECT * FROM t USING SAMPLE 10%", "sampling"),
    ("SELECT * FROM t TABLESAMPLE 10%", "sampling"),
    ("WITH s AS (SELECT * FROM t USING SAMPLE 5 ROWS) SELECT * FROM s", "sampling"),
    ("SELECT *, random() AS r FROM t", "random()"),
    ("SELECT * FROM t ORDER BY random()", "random()"),
    ("SELECT gen_random_uuid() AS u, * FROM t", "gen_random_uuid()"),
    ("SELECT uuid() AS u, * FROM t", "uuid()"),
    ("SELECT * FROM t WHERE d < now()", "now()"),
    ("SELECT * FROM t WHERE d < current_timestamp", "current_timestamp"),
    ("SELECT * FROM t WHERE d < CURRENT_DATE", "current_date"),
    ("SELECT * FROM t LIMIT 10", "LIMIT"),
    ("SELECT * FROM t OFFSET 10", "LIMIT"),
    ("SELECT row_number() OVER () AS k, * FROM t", "row_number() OVER () without ORDER BY"),
    ("SELECT * FROM t; -- a comment after the ';'", "cannot be read as a subquery"),
])
def test_a_query_that_is_not_one_deterministic_select_is_refused_in_one_line(query, problem):
    with pytest.raises(ConfigError, match="--query") as err:
        JobConfig.of(query=query)
    assert problem in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("query", [
    "SELECT * FROM t WHERE title <> 'random(); now()'",
    "SELECT id, title || ';' AS title, abstract FROM t;",
    "SELECT row_number() OVER (ORDER BY id) AS k, * FROM t",
    "SELECT * FROM t ; ; ",
    "SELECT * FROM t -- the whole corpus",
])
def test_deterministic_queries_pass_and_read_as_a_subquery(tmp_path, query):
    assert JobConfig.of(query=query).spec.query == query
    db = make_db(tmp_path / "a.db", rows_301()[:5])
    units = plan_units(resolve_inputs([str(db)]), 0, None, SqlSpec("id", query=query))
    assert [r["id"] for u in units for _, r in read_unit(u)] == [0, 1, 2, 3, 4]
