"""The Python face as a user calls it: `ray_job.open_run` reads a finished run (ids, lazy
vectors, search, similar, tables: the session's 20-paper run, already paid for in the default
suite); `ray_job.embed` runs the CLI's run (40 real papers: slow, a run of its own)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import ray_job
from ray_job.errors import ConfigError, DataError, UserError

PAPERS = 40


@pytest.fixture(scope="module")
def api_run(local_ray, sample_path, tmp_path_factory):
    """40 papers embedded by `ray_job.embed`, fp32, arXiv urls."""
    out = tmp_path_factory.mktemp("api") / "run"
    return ray_job.embed(inputs=sample_path, output=out, limit=PAPERS, precision="fp32",
                         url_template="arxiv")


def h5_rows(path: Path) -> tuple[list[str], np.ndarray]:
    with h5py.File(path, "r") as h5:
        return [i.decode() for i in h5["ids"][:]], h5["embeddings"][:]


def test_import_ray_job_stays_light():
    code = ("import sys, ray_job; heavy = [m for m in ('ray', 'torch', 'pyarrow', "
            "'transformers') if m in sys.modules]; print(heavy); ray_job.open_run")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def session_run(finished_run):
    return ray_job.open_run(finished_run)


@pytest.mark.slow
def test_embed_returns_the_finished_run(api_run):
    assert isinstance(api_run, ray_job.FinishedRun)
    assert api_run.report["rows_embedded"] == PAPERS == len(api_run)
    assert api_run.report["precision"] == "fp32"
    ids, _ = h5_rows(api_run.h5_path)
    assert api_run.ids[:] == ids
    assert api_run.urls[0] == f"https://arxiv.org/pdf/{ids[0]}.pdf"
    assert api_run.to_arrow(slice(0, 2)).column_names == ["id", "url", "embedding"]


def test_open_run_reads_rows_lazily(session_run):
    api_run = session_run
    ids, vectors = h5_rows(api_run.h5_path)
    assert len(api_run) == 20 and api_run.ids[:] == ids and api_run.urls is None
    np.testing.assert_array_equal(api_run.vectors[5:9], vectors[5:9])
    np.testing.assert_array_equal(api_run.vectors[[7, 2, 7]], vectors[[7, 2, 7]])
    np.testing.assert_array_equal(api_run.vectors[-1], vectors[-1])
    chunks = list(api_run.vectors.chunks(8))
    assert [len(c) for c in chunks] == [8, 8, 4]
    np.testing.assert_array_equal(np.concatenate(chunks), vectors)
    assert api_run.dim == vectors.shape[1]


def test_tables_of_a_slice(session_run):
    api_run = session_run
    ids, vectors = h5_rows(api_run.h5_path)
    table = api_run.to_arrow(slice(3, 6))
    assert table.column_names == ["id", "embedding"]
    assert table.column("id").to_pylist() == ids[3:6]
    np.testing.assert_array_equal(np.stack(table.column("embedding").to_numpy(
        zero_copy_only=False)), vectors[3:6])
    frame = api_run.to_pandas([0, 19])
    assert list(frame["id"]) == [ids[0], ids[19]]


def test_search_and_similar_equal_the_cli(session_run, capsys):
    from ray_job.cli import main

    api_run = session_run
    query = "quantum chromodynamics"
    assert main(["search", api_run.location, query, "-k", "5", "--json"]) == 0
    cli_hits = json.loads(capsys.readouterr().out)
    hits = api_run.search(query, k=5)
    assert [(h.id, round(h.score, 5)) for h in hits] == \
        [(h["id"], round(h["score"], 5)) for h in cli_hits]
    paper = api_run.ids[3]
    assert main(["similar", api_run.location, paper, "-k", "4", "--json"]) == 0
    cli_similar = json.loads(capsys.readouterr().out)
    assert [h.id for h in api_run.similar(paper, k=4)] == [h["id"] for h in cli_similar]


def test_open_run_refuses_what_is_not_a_finished_run(session_run, tmp_path):
    api_run = session_run
    with pytest.raises(UserError, match="is not a run directory"):
        ray_job.open_run(tmp_path)
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "job.json").write_text((Path(api_run.location) / "job.json").read_text())
    with pytest.raises(UserError, match=r"is not a finished run \(no report.json"):
        ray_job.open_run(unfinished)
    with pytest.raises(UserError, match="not in"):
        api_run.similar("no-such-paper")
    with pytest.raises(UserError, match="k must be at least 1"):
        api_run.search("x", k=0)


def test_settings_are_checked_as_the_cli_checks_them(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key"):
        ray_job.embed(output=tmp_path, no_such_setting=1)
    with pytest.raises(ConfigError) as err:
        ray_job.embed(output=tmp_path, precision="fp64")
    assert "\n" not in str(err.value)
    assert not any(tmp_path.iterdir())           # refused before anything is written
    from ray_job.api import job_config

    base = ray_job.JobConfig.of(limit=5, output="a")
    assert job_config(base, limit=7).options.limit == 7
    assert job_config({"preset": "e5"}).spec.prompt == "passage: "
    yaml_file = tmp_path / "job.yaml"
    yaml_file.write_text("limit: 3\nprecision: fp32\n")
    assert job_config(yaml_file, limit=4).options.limit == 4
    assert job_config(yaml_file).spec.precision == "fp32"


@pytest.mark.slow
def test_strict_raises_once_the_run_is_finished(local_ray, sample_path, tmp_path):
    bad = tmp_path / "bad.jsonl"
    lines = sample_path.read_text().splitlines()[:3]
    bad.write_text("\n".join(lines + [json.dumps({"id": "x1", "title": "t"})]) + "\n")
    with pytest.raises(DataError, match="strict: 1 rows rejected: 1 missing_abstract"):
        ray_job.embed(inputs=[bad], output=tmp_path / "run", strict=True, precision="fp32")
    assert len(ray_job.open_run(tmp_path / "run")) == 3


@pytest.mark.slow
def test_embed_writes_the_vectors_the_cli_writes(api_run, sample_path, tmp_path, capsys):
    from ray_job.cli import main

    assert main(["run", "--input", str(sample_path), "--output", str(tmp_path / "cli"),
                 "--limit", str(PAPERS), "--precision", "fp32", "--url-template",
                 "arxiv"]) == 0
    cli_ids, cli_vectors = h5_rows(tmp_path / "cli" / "embeddings.h5")
    ids, vectors = h5_rows(api_run.h5_path)
    assert ids == cli_ids
    np.testing.assert_allclose(vectors, cli_vectors, atol=1e-5)
