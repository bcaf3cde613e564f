"""Incremental runs pinned to content: what a run reuses from `--previous` is pinned by a
fingerprint in its job record, taken when the run starts; finalize refuses (one line) an old
embeddings.h5 that changed since, and checks every reused row's id and text hash against the
old file as it copies the vector, so a row never gets another paper's vector. A `--previous`
that is not a readable embeddings.h5 is one line before anything is written."""
from __future__ import annotations

import json
import os
import shutil

import h5py
import numpy as np
import pytest

from ray_job.cli import main
from ray_job.config import JobConfig
from ray_job.pipeline import run


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def vectors(h5_path):
    with h5py.File(h5_path, "r") as h5:
        return dict(zip(h5["ids"].asstr()[:], h5["embeddings"][:], strict=True))


def rows_reversed(src, dst):
    """`src` with its rows in the opposite order (every dataset alike): the same papers and
    vectors, each at another row, as after a re-run of the old run on a reordered input."""
    with h5py.File(src, "r") as old, h5py.File(dst, "w") as new:
        for name, dset in old.items():
            new[name] = dset[:][::-1]
        new.attrs.update(old.attrs)


def replace_with(path, make):
    """Put a new file in place of `path` the way a re-run does (a new file renamed over it)."""
    tmp = path.with_name(".replacement.h5")
    make(tmp)
    os.replace(tmp, path)


def test_finalize_refuses_a_previous_run_that_changed_and_never_copies_another_papers_vector(
        ray_embed, sample_records, tmp_path, capsys):
    a_in = write_jsonl(tmp_path / "w1.jsonl", sample_records[:50])
    b_in = write_jsonl(tmp_path / "w2.jsonl", sample_records[:45] + sample_records[100:105])
    a, b = tmp_path / "A", tmp_path / "B"
    run(JobConfig.of(inputs=(str(a_in),), output=str(a), precision="fp32"))
    report = run(JobConfig.of(inputs=(str(b_in),), output=str(b), previous=str(a),
                              precision="fp32"))
    assert report["incremental"]["reused"] == 45
    expected = vectors(b / "embeddings.h5")
    pin = json.loads((b / "job.json").read_text())["previous_pin"]
    assert pin["location"] == str(a) and len(pin["fingerprint"]) >= 16
    original = tmp_path / "A-original.h5"
    shutil.copyfile(a / "embeddings.h5", original)
    result = (b / "embeddings.h5").read_bytes()
    capsys.readouterr()                                    # the runs' progress lines

    # A replaced (re-run on a reordered input): the same papers at other rows
    replace_with(a / "embeddings.h5", lambda tmp: rows_reversed(original, tmp))
    done = ray_embed("finalize", str(b), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert f"--previous {a} changed since {b} started" in line and "run the same" in line
    assert (b / "embeddings.h5").read_bytes() == result          # nothing changed

    # A back as it was (a copy with the same content, a new file): finalize goes on
    replace_with(a / "embeddings.h5", lambda tmp: shutil.copyfile(original, tmp))
    assert ray_embed("finalize", str(b), cwd=tmp_path).returncode == 0
    again = vectors(b / "embeddings.h5")
    assert again.keys() == expected.keys()
    assert all(np.array_equal(again[k], expected[k]) for k in expected)

    # a record without a pin (written before pins existed): each reused row is checked as
    # its vector is copied, and the first row of another paper stops finalize
    record = json.loads((b / "job.json").read_text())
    del record["previous_pin"]
    (b / "job.json").write_text(json.dumps(record))
    replace_with(a / "embeddings.h5", lambda tmp: rows_reversed(original, tmp))
    result = (b / "embeddings.h5").read_bytes()
    done = ray_embed("finalize", str(b), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "is not the row" in line and "--previous" in line
    assert (b / "embeddings.h5").read_bytes() == result

    # the same command again classifies against what A holds now: the same vectors per paper
    report = run(JobConfig.of(inputs=(str(b_in),), output=str(b), previous=str(a),
                              precision="fp32"))
    assert report["incremental"]["reused"] == 45
    again = vectors(b / "embeddings.h5")
    assert all(np.array_equal(again[k], expected[k]) for k in expected)


def small_h5(path, rows=8, dim=4):
    with h5py.File(path, "w") as h5:
        h5["ids"] = np.array([f"p{i}".encode() for i in range(rows)])
        h5["embeddings"] = np.ones((rows, dim), np.float32)
        h5["text_hashes"] = np.arange(rows, dtype=np.uint64)
        h5.attrs["count"] = rows
    return path


def not_hdf5(path):
    path.write_text("this is not an HDF5 file\n")
    return path


def truncated(path):
    small_h5(path, rows=5000, dim=64)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path


def without_vectors(path):
    with h5py.File(path, "w") as h5:
        h5["ids"] = np.array([b"a"])
    return path


def wrong_lengths(path):
    small_h5(path)
    with h5py.File(path, "a") as h5:
        del h5["text_hashes"]
        h5["text_hashes"] = np.arange(3, dtype=np.uint64)
    return path


@pytest.mark.parametrize("make", [not_hdf5, truncated, without_vectors, wrong_lengths])
def test_a_previous_that_is_not_a_readable_embeddings_h5_is_one_line_before_anything_is_written(
        make, sample_path, tmp_path, capsys):
    old = make(tmp_path / "old.h5")
    out = tmp_path / "new"
    code = main(["run", "--input", str(sample_path), "--output", str(out), "--limit", "5",
                 "--previous", str(old)])
    err = capsys.readouterr().err
    assert code == 2, err
    [line] = err.strip().splitlines()
    assert line.startswith(f"ray-embed: error: --previous {old}")
    assert not (out / "job.json").exists() and not (out / "lease.json").exists()
