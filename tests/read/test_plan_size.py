"""Sane plans: --block-bytes has a floor (refused below, one line), and a plan's read units
are capped (a block size that would make more is raised, and said so)."""
from __future__ import annotations

import pytest

from ray_job.config_checks import MIN_BLOCK_BYTES_OPTION
from ray_job.errors import ConfigError
from ray_job.read.inputs import InputFile, SqlSpec
from ray_job.read.plan import resolve_plan
from ray_job.read.plan_size import MAX_PLAN_UNITS


def test_block_bytes_below_the_floor_is_one_line_before_anything_starts(tmp_path, monkeypatch,
                                                                        capsys, sample_path):
    """Was: a 4.8 MB plan of 26,166 units for 20 rows, nothing embedded after 4 minutes."""
    from ray_job.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["run", "--input", str(sample_path), "--limit", "20", "--block-bytes", "1",
                 "--output", "o"]) == 2
    err = capsys.readouterr().err
    assert err.count("ray-embed: error:") == 1 and "Traceback" not in err
    assert f"block_bytes must be at least {MIN_BLOCK_BYTES_OPTION:,}" in err
    assert list(tmp_path.iterdir()) == []


def test_the_floor_itself_is_taken():
    from ray_job.config import JobConfig

    assert JobConfig.of(block_bytes=MIN_BLOCK_BYTES_OPTION).options.block_bytes == 4096
    with pytest.raises(ConfigError, match="at least 4,096"):
        JobConfig.of(block_bytes=MIN_BLOCK_BYTES_OPTION - 1)


def big_files(*sizes):
    """Plain JSONL inputs that are never opened (byte-range planning needs only sizes)."""
    return [InputFile(i, f"/nowhere/part-{i}.jsonl", "jsonl", None, size)
            for i, size in enumerate(sizes)]


def test_a_plan_with_too_many_units_is_coarsened_and_says_so(capsys):
    files = big_files(10 * 2**30, 3 * 2**30 + 5)
    plan = resolve_plan(None, files, [], MIN_BLOCK_BYTES_OPTION, None, SqlSpec("id"))
    assert len(plan.units) <= MAX_PLAN_UNITS < (13 * 2**30) // MIN_BLOCK_BYTES_OPTION
    assert plan.block_bytes > MIN_BLOCK_BYTES_OPTION and plan.block_bytes % 1024 == 0
    covered = {f.index: sum(u.end - u.start for u in plan.units if u.file_index == f.index)
               for f in files}
    assert covered == {f.index: f.size for f in files}             # every byte still in a unit
    assert "read units; using" in capsys.readouterr().err


def test_a_plan_within_the_cap_is_cut_as_asked(capsys):
    plan = resolve_plan(None, big_files(2**20), [], 8192, None, SqlSpec("id"))
    assert plan.block_bytes == 8192 and len(plan.units) == 128
    assert capsys.readouterr().err == ""
