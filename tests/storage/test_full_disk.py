"""A full disk under --output: at every kind of write (rejects, shards, embeddings.h5, the
report) one line naming the path, exit code 3, nothing partial left, and the rerun completes
with the same output. Injected at the storage door (tests/faultkit), and for real on a
small tmpfs (where HDF5 used to die with a segmentation fault)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import reference_text
from faultkit import arm, disarm, storage_plan

ROWS = 24


@pytest.fixture
def corpus(tmp_path, sample_records) -> Path:
    """24 papers of the real sample and two lines that are rejects (rejects/ gets a file)."""
    path = tmp_path / "papers.jsonl"
    lines = [json.dumps(r) for r in sample_records[:ROWS]]
    lines[5:5] = ["{not json", json.dumps({"id": "no-text", "title": "", "abstract": ""})]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_args(corpus: Path, out: Path) -> list[str]:
    return ["run", "--input", str(corpus), "--output", str(out), "--precision", "fp32",
            "--shard-rows", "8", "--block-bytes", "8192"]


def read_h5(out: Path):
    with h5py.File(out / "embeddings.h5") as h5:
        return h5["ids"][:].tolist(), h5["embeddings"][:]


def rejects_of(out: Path) -> list[dict]:
    found = [json.loads(line) for p in sorted((out / "rejects").glob("*.jsonl"))
             for line in p.read_text().splitlines()]
    return sorted(found, key=lambda r: r["key"])


def temp_files(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*") if p.is_file() and p.name.endswith((".tmp", ".part"))]


def assert_one_line_failure(result, names: str) -> str:
    """Exit code 3, and a last stderr line naming the file (`names`: "VERB PATH...") and its
    log; no traceback."""
    assert result.returncode == 3, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Segmentation" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"ray-embed: failed: cannot {names}") and \
        "No space left on device" in line and "run the same command to resume" in line, line
    log = Path(line.rsplit("(full log: ", 1)[1].rstrip(")"))
    assert log.is_file() and "Traceback" in log.read_text()
    return line


# slow: five CLI runs (~45 s); a real full disk in the default suite:
# test_hdf5_meeting_a_full_disk_is_one_line_not_a_segmentation_fault
@pytest.mark.slow
def test_a_full_disk_at_each_write_is_one_line_and_the_rerun_completes_the_same(
        ray_embed, corpus, sample_records, reference_model, tmp_path, monkeypatch):
    """Before: a Ray task traceback (rejects, shards), a raw OSError traceback (the report),
    exit code 1."""
    out = tmp_path / "out"
    steps = [("write", "*/rejects/unit-*", f"write {out}/rejects/unit-"),
             ("write", "*/shards/part-*", f"write {out}/shards/part-"),
             ("move", "*/embeddings.h5", f"move {out}/embeddings.h5:"),
             ("write", "*/report.json", f"write {out}/report.json:")]
    for op, pattern, names in steps:
        arm(monkeypatch, tmp_path / "faults",
            storage_plan([{"op": op, "path": pattern, "fault": "enospc"}]))
        assert_one_line_failure(ray_embed(*run_args(corpus, out), cwd=tmp_path), names)
        assert not temp_files(out) and not (out / "report.json").exists()
        assert not (out / "lease.json").exists()
        assert (out / "embeddings.h5").exists() == (pattern == "*/report.json")
    disarm(monkeypatch)
    again = ray_embed(*run_args(corpus, out), cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    ids, vectors = read_h5(out)
    assert [i.decode() for i in ids] == [r["id"] for r in sample_records[:ROWS]]
    expected = reference_model.encode([reference_text(r) for r in sample_records[:ROWS]])
    np.testing.assert_allclose(vectors, expected, rtol=1e-4, atol=1e-5)
    assert sorted(r.get("id", "") for r in rejects_of(out)) == ["", "no-text"]


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of its own (size set by the test: `mount(size)`, `resize(size)`); skipped
    where mounting is refused (not root)."""
    where = tmp_path / "disk"
    where.mkdir()

    def mount(size: str) -> Path:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(where)], capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs to fill ({done.stderr.strip() or 'refused'})")
        return where

    def resize(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True)

    yield mount, resize
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def copy_unfinalized(run: Path, to: Path) -> Path:
    """The run's directory without what finalize makes."""
    shutil.copytree(run, to, ignore=shutil.ignore_patterns("embeddings.h5", "report.json",
                                                           "parquet", "index", "logs"))
    return to


def fill_leaving(folder: Path, free: int) -> None:
    """Write a file in `folder` that leaves about `free` bytes of its disk free."""
    now = shutil.disk_usage(folder).free
    (folder / "filler").write_bytes(b"\0" * max(0, now - free))


FINALIZE_WITHOUT_PRECHECK = textwrap.dedent("""
    import sys
    try:                                    # let HDF5 itself meet the full disk
        import ray_job.storage.space as space
        space.MARGIN_FRACTION, space.SLACK_BLOCKS = 0, 0
    except ImportError:
        pass
    from ray_job.cli import main
    sys.exit(main(["finalize", sys.argv[1]]))
""")


def test_hdf5_meeting_a_full_disk_is_one_line_not_a_segmentation_fault(finished_run,
                                                                       small_disk):
    """Before: an OSError traceback from h5py, then `Segmentation fault` (exit -11) at
    interpreter exit. The free-space check is off here, so HDF5 really runs out of space."""
    mount, resize = small_disk
    disk = mount("4m")
    run = copy_unfinalized(finished_run, disk / "run")
    vectors = 20 * 384 * 4
    fill_leaving(disk, vectors + 4096)              # room for the vectors, not the rest
    done = subprocess.run([sys.executable, "-c", FINALIZE_WITHOUT_PRECHECK, str(run)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, (done.returncode, done.stderr[-3000:])
    assert_one_line_failure(done, f"write {run}/embeddings.h5:")
    assert not temp_files(run) and not (run / "embeddings.h5").exists()
    (disk / "filler").unlink()
    resize("64m")                                   # room for the free-space check's margin
    again = subprocess.run([sys.executable, "-m", "ray_job", "finalize", str(run)],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    ids, emb = read_h5(run)
    first_ids, first_emb = read_h5(finished_run)
    assert ids == first_ids
    np.testing.assert_array_equal(emb, first_emb)


def test_too_little_space_for_the_hdf5_is_one_line_before_it_is_written(finished_run,
                                                                       small_disk, ray_embed,
                                                                       tmp_path):
    from ray_job.storage.space import margin

    mount, _ = small_disk
    disk = mount("4m")
    run = copy_unfinalized(finished_run, disk / "run")
    vectors = 20 * 384 * 4
    fill_leaving(disk, vectors // 2)
    result = ray_embed("finalize", str(run), cwd=tmp_path)
    line = assert_one_line_failure(result, f"write {run}/embeddings.h5:")
    wanted = vectors + margin(vectors, os.statvfs(disk).f_frsize)
    assert f"needs about {wanted / 1024:,.0f} KiB" in line          # the vectors and the margin
    assert not temp_files(run) and not (run / "embeddings.h5").exists()


def test_a_result_that_fits_with_little_room_to_spare_is_written(finished_run, small_disk,
                                                                ray_embed, tmp_path):
    """The pre-check's margin is proportional to what is written and to the filesystem's
    blocks (a fixed 16 MiB refused a 30 KB result with 3 MB free), and it is enough: with the
    room it asks for when the vectors come (plus the ids, text hashes and lease written before
    them, 64 KiB), the whole finalize fits."""
    from ray_job.storage.space import margin

    mount, _ = small_disk
    disk = mount("4m")
    run = copy_unfinalized(finished_run, disk / "run")
    vectors = 20 * 384 * 4
    fill_leaving(disk, vectors + margin(vectors, os.statvfs(disk).f_frsize) + (64 << 10))
    assert shutil.disk_usage(disk).free < 1 << 20           # less than a megabyte to spare
    result = ray_embed("finalize", str(run), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    ids, emb = read_h5(run)
    first_ids, first_emb = read_h5(finished_run)
    assert ids == first_ids
    np.testing.assert_array_equal(emb, first_emb)
