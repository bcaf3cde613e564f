"""--fresh touches only what ray-embed made, and only in a run directory; --output must be a
folder. Locally and in object storage (no Ray needed)."""
from __future__ import annotations

import json

import pytest

from ray_job.errors import UserError
from ray_job.rundir import layout
from ray_job.rundir.rundir import RunDir
from ray_job.storage.store import Store

USER_FILES = {"README.md": b"# my project\n", "parquet/2025.parquet": b"PAR1 mine",
              "index/notes.txt": b"notes", "reads/todo.txt": b"todo",
              "rejects/mine.jsonl": b"{}\n", "shards/keep.txt": b"k",
              "reuse/unit-notes.json": b"{}", "src/main.py": b"print(1)\n"}
UNIT = "00000-0000000000000"
RAY_EMBED_FILES = {
    "job.json": json.dumps({"config_hash": "abc"}).encode(), "plan.json": b"{}",
    "report.json": b"{}", "embeddings.h5": b"h5", "embeddings.duckdb": b"db",
    "shards/part-0000000000000000-5-4e0ecf56.arrow": b"a",
    "shards/.part-0000000000000005-5-1234abcd.arrow.0123abcd.tmp": b"t",
    "shards/corrupt/part-0000000000000009-5-89abcdef.arrow": b"c",
    f"rejects/unit-{UNIT}.jsonl": b"{}\n", f"rejects/tokenize-{7:019d}.jsonl": b"{}\n",
    "rejects/duplicates.jsonl": b"{}\n", f"reads/unit-{UNIT}.json": b"{}",
    f"reuse/unit-{UNIT}.arrow": b"r", f"reuse/unit-{UNIT}.json": b"{}",
    "parquet/part-00000.parquet": b"p", "index/ann.faiss": b"i", "index/titles.arrow": b"t",
    "index/index.json": b"{}", ".embeddings.h5.0123456789ab.tmp": b"tmp"}


@pytest.fixture(params=["local", "s3"])
def folder(request, tmp_path):
    """An empty folder: a local path, or a prefix in a bucket of the loopback S3 server."""
    if request.param == "local":
        return Store.at(tmp_path / "myproject")
    s3 = request.getfixturevalue("s3")
    return Store.at(f"s3://{s3.bucket}/myproject")


def put(store: Store, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        store.write_bytes(name, data)


def listing(store: Store) -> dict[str, bytes]:
    fs = store.files.fs
    fs.invalidate_cache()
    root = store.root.rstrip("/") + "/"
    return {p[len(root):]: fs.cat_file(p) for p in fs.find(store.root)}


def test_fresh_on_a_folder_that_is_no_run_refuses_in_one_line_and_deletes_nothing(
        tmp_path, monkeypatch, capsys):
    """The issue's case, through the command line: the user's project folder as --output."""
    from ray_job.cli import main

    project = Store.at(tmp_path / "myproject")
    put(project, USER_FILES)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--fresh", "--output", "myproject"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("ray-embed:")]
    assert len(lines) == 1 and "is not a run directory" in lines[0], err
    assert "nothing was deleted" in lines[0] and "Traceback" not in err
    assert listing(project) == USER_FILES          # nothing deleted, nothing added (no demo/)


def test_clear_refuses_a_folder_that_is_no_run(folder):
    put(folder, USER_FILES)
    with pytest.raises(UserError, match="is not a run directory.*nothing was deleted"):
        RunDir(folder.url).clear()
    assert listing(folder) == USER_FILES


def test_fresh_removes_only_the_names_the_layout_declares(folder):
    """User files inside a run directory's own folders survive; so do the lease and the
    demo corpus; a declared folder left empty goes (locally: object stores have none)."""
    kept = {**USER_FILES, "lease.json": b"{}", "demo/arxiv-demo-20.jsonl": b"{}\n"}
    put(folder, {**kept, **RAY_EMBED_FILES})
    RunDir(folder.url).clear()
    assert listing(folder) == kept
    if folder.is_local:
        assert not (folder.local_path / "shards" / "corrupt").exists()


def test_the_dataset_card_goes_only_when_it_is_ray_embeds(folder):
    card = (layout.CARD_HEAD + "# Paper embeddings\n").encode()
    put(folder, {**RAY_EMBED_FILES, layout.CARD: card})
    RunDir(folder.url).clear()
    assert listing(folder) == {}


def test_a_folder_with_only_what_a_driver_makes_first_is_cleared(folder):
    """A first driver killed before it wrote job.json left its lease and the demo corpus."""
    put(folder, {"lease.json": b"{}", "demo/arxiv-demo-20.jsonl": b"{}\n"})
    RunDir(folder.url).clear()
    assert set(listing(folder)) == {"lease.json", "demo/arxiv-demo-20.jsonl"}


def test_a_job_json_that_ray_embed_did_not_write_is_no_run(folder):
    put(folder, {**USER_FILES, "job.json": b'{"name": "my build job"}'})
    with pytest.raises(UserError, match="is not a run directory"):
        RunDir(folder.url).clear()


@pytest.mark.parametrize("output", ["afile", "afile/run"])
def test_output_naming_an_existing_file_is_one_line(tmp_path, monkeypatch, capsys, output):
    from ray_job.cli import main

    (tmp_path / "afile").write_text("mine\n")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--output", output, "--limit", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("ray-embed: error:") == 1 and "is a file, not a folder" in err, err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
    assert (tmp_path / "afile").read_text() == "mine\n"


def test_output_naming_an_object_is_one_line(s3):
    from ray_job.rundir.cleanup import check_output

    s3.put_object(Bucket=s3.bucket, Key="run", Body=b"x")
    with pytest.raises(UserError, match="is an object, not a folder"):
        check_output(Store.at(f"s3://{s3.bucket}/run"), fresh=False)


def test_a_users_file_among_the_run_files_is_never_taken_for_one(tmp_path):
    """Not read as a shard, not quarantined, not counted as rejects, not published or
    replaced as an export: only names the layout declares are the run's."""
    store = Store.at(tmp_path)
    mine = {"shards/part-notes.arrow": b"not a shard", "shards/.part-notes.tmp": b"mine",
            "rejects/mine.jsonl": b"not json\n", "parquet/part-2025.parquet": b"mine",
            "index/notes.txt": b"mine"}
    put(store, {**mine, "job.json": json.dumps({"config_hash": "abc"}).encode()})
    run_dir = RunDir(store.url)
    assert run_dir.shards.names() == [] and list(run_dir.shards.keys()) == []
    assert run_dir.shards.corrupt_count() == 0 and run_dir.rejects.tally() == {}
    assert run_dir.results.names(layout.PARQUET) == [] and run_dir.results.names(layout.INDEX) == []
    assert {n: d for n, d in listing(store).items() if n in mine} == mine


def test_fresh_on_a_new_folder_is_no_refusal(folder):
    from ray_job.rundir.cleanup import check_output

    check_output(folder, fresh=True)          # nothing there yet: nothing to refuse
    RunDir(folder.url).clear()
    assert listing(folder) == {}


def test_every_name_the_run_makes_is_declared():
    """The names RunDir and the exporters build, at the sizes they can reach (a 6-digit file
    index, a 19-digit key), are the layout's: none is ever ignored as a user's file."""
    import numpy as np

    from ray_job.read.inputs import ReadUnit
    from ray_job.rundir.shards import shard_name

    unit = ReadUnit(123_456, "x.jsonl", "jsonl", None, 2**40 - 1, None).name
    for folder, name in [(layout.READS, layout.unit_reads(unit)),
                         (layout.REJECTS, layout.unit_rejects(unit)),
                         (layout.REUSE, layout.unit_reuse_rows(unit)),
                         (layout.REUSE, layout.unit_reuse_counts(unit)),
                         (layout.REJECTS, layout.row_rejects("tokenize", 2**63 - 1)),
                         (layout.SHARDS, shard_name(np.array([2**63 - 1]))),
                         (layout.PARQUET, f"part-{123_456:05d}.parquet")]:
        assert layout.owned(folder, name), (folder, name)
