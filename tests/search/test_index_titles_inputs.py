"""`ray-embed index` reads the papers' titles from the run's inputs: when they were moved or
changed since the run, the index is built without titles, and one line says why."""
from __future__ import annotations

import json
import os

from test_search_index import synthetic_run

from ray_job.cli import main
from ray_job.read.inputs import SqlSpec, resolve_inputs
from ray_job.read.manifest import build_manifest
from ray_job.read.plan import resolve_plan
from ray_job.rundir.rundir import RunDir


def with_plan(root):
    """The synthetic run's plan.json, as its first driver writes it."""
    files = resolve_inputs([str(root / "papers.jsonl")])
    plan = resolve_plan(None, files, build_manifest(files), 4096, None, SqlSpec("id"))
    RunDir.at(root).write_plan(plan.to_dict())
    return root


def test_the_index_of_a_run_whose_inputs_moved_has_no_titles_and_says_so(tmp_path, capsys):
    root, _ = synthetic_run(tmp_path / "run", rows=300, dim=8)
    with_plan(root)
    (root / "papers.jsonl").rename(tmp_path / "elsewhere.jsonl")
    assert main(["index", str(root)]) == 0
    out, err = capsys.readouterr()
    [line] = err.strip().splitlines()
    assert line.startswith("ray-embed: titles left out of the index") and "papers.jsonl" in line
    assert "no titles" in out
    assert (not (root / "index" / "titles.arrow").exists()
            and (root / "index" / "ann.faiss").exists())
    assert json.loads((root / "index" / "index.json").read_text())["titles"] is False


def test_the_index_of_a_run_whose_inputs_changed_has_no_titles(tmp_path, capsys):
    root, _ = synthetic_run(tmp_path / "run", rows=300, dim=8)
    with_plan(root)
    path = root / "papers.jsonl"
    data = path.read_bytes()
    stamp = path.stat().st_mtime_ns
    path.write_bytes(data.replace(b"Paper  1", b"Paper  X"))      # another title, same size
    os.utime(path, ns=(stamp, stamp + 1_000_000_000))
    assert main(["index", str(root)]) == 0
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "titles left out of the index" in line and "changed" in line
    assert not (root / "index" / "titles.arrow").exists()


def test_every_reader_of_the_inputs_checks_them_against_the_plan(tmp_path):
    """Titles, map labels, explore and the Lance export read the inputs again through
    row_records: with the frozen plan, a file changed since the run (same size, another
    title) is one line naming it, never a wrong title."""
    import pytest

    from ray_job.finalize.row_records import RowsNotFound, row_records
    from ray_job.read.plan import frozen_plan

    root, _ = synthetic_run(tmp_path / "run", rows=300, dim=8)
    run_dir = RunDir.at(with_plan(root))
    job = run_dir.load_job()
    titles = [r["title"] for r in row_records(root / "embeddings.h5", job, ("title",),
                                              frozen_plan(run_dir))]
    assert len(titles) == 300
    path = root / "papers.jsonl"
    stamp = path.stat().st_mtime_ns
    path.write_bytes(path.read_bytes().replace(b"Paper  1", b"Paper  X"))
    os.utime(path, ns=(stamp, stamp + 1_000_000_000))
    with pytest.raises(RowsNotFound, match=r"the run's input .*papers\.jsonl changed"):
        list(row_records(root / "embeddings.h5", job, ("title",), frozen_plan(run_dir)))
