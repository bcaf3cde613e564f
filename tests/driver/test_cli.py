"""The command line as a user runs it: a new process, its own embedded Ray."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import pytest

from ray_job.settings import COMMAND_OPTIONS


def ray_embed(*args, cwd=None, timeout=600):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "ray_job", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout)


def test_no_argument_default_embeds_the_demo_corpus_with_the_bundled_model(tmp_path):
    result = ray_embed("run", "--limit", "60", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"wrote 60 embeddings (dim 384) to {tmp_path / 'out' / 'embeddings.h5'}" in result.stdout
    demo = tmp_path / "out" / "demo" / "arxiv-demo-2000.jsonl"
    assert len(demo.read_text().splitlines()) == 2000
    with h5py.File(tmp_path / "out" / "embeddings.h5") as h5:
        assert h5["ids"][:3].tolist() == [b"demo.00000", b"demo.00001", b"demo.00002"]
        assert h5.attrs["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "embedded 60/60 rows (100%)" in result.stderr      # the last line: exact
    assert "Traceback" not in result.stderr
    # Ray's C++ note on Ray Data's actor arguments (benign here) is not shown as an error
    assert "max_restarts > 0" not in result.stderr and " E " not in result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["rows_embedded"] == 60


def test_finalize_alone_rebuilds_the_hdf5_and_the_index_follows_the_vectors(
        local_ray, tmp_path, monkeypatch, capsys):
    from ray_job.cli import main

    monkeypatch.chdir(tmp_path)                 # in this process, on the session's Ray
    assert main(["run", "--limit", "20", "--output", "o", "--index"]) == 0
    info = json.loads((tmp_path / "o" / "index" / "index.json").read_text())
    assert info["rows"] == 20 and info["titles"]
    (tmp_path / "o" / "embeddings.h5").unlink()
    capsys.readouterr()
    assert main(["finalize", "o", "--index"]) == 0, capsys.readouterr().err
    result = capsys.readouterr()
    assert "wrote 20 embeddings (dim 384)" in result.out
    with h5py.File(tmp_path / "o" / "embeddings.h5") as h5:
        assert h5["embeddings"].shape == (20, 384)
    # the same vectors again: the index is current, not rebuilt
    assert "index up to date: 20 vectors" in result.out
    assert main(["similar", "o", "demo.00003", "-k", "2", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert [h["rank"] for h in hits] == [1, 2] and all(h["title"] for h in hits)


# slow: a whole bench run (~12 s); its numbers' arithmetic in the default suite: test_throughput
@pytest.mark.slow
def test_bench_shows_start_up_apart_from_the_steady_rate_and_sizes_cores(
        local_ray, tmp_path, monkeypatch, capsys):
    from tiny_models import tiny_bert

    from ray_job.cli import main

    model = tiny_bert(tmp_path / "tiny-bert")
    monkeypatch.chdir(tmp_path)                 # in this process, on the session's Ray
    assert main(["bench", "--docs", "600", "--shard-rows", "100", "--model", str(model),
                 "--text", "{abstract}", "--gpu-docs-per-s", "2000",
                 "--corpus-size", "1000000"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "docs embedded      600 on 1 replica(s), cpu" in out
    assert " s to the first shard" in out and " docs/s steady state; " in out
    assert "docs/s per CPU core (read, text, tokenize, write)" in out
    assert "to feed one replica at 2,000 docs/s (assumed)" in out
    assert "h for 1,000,000 papers (steady state rate, start-up once)" in out
    assert main(["bench", "--docs", "10", "--gpu-docs-per-s", "0"]) == 2
    assert "--gpu-docs-per-s must be above 0" in capsys.readouterr().err


MISTAKES = [
    (["run", "--input", "missing.jsonl"], "input not found: missing.jsonl"),
    (["run", "--input", "data.csv"], "unknown input type"),
    (["run", "--model", "./not-a-folder"], "unknown model './not-a-folder'"),
    (["run", "--config", "bad.yaml"], "unknown config key(s): modle"),
    (["run", "--text", "{title"], "bad text template"),
    (["finalize", "nowhere"], "is not a run directory"),
]


def one_error_line(stderr: str, message: str) -> None:
    lines = [line for line in stderr.splitlines() if line.startswith("ray-embed:")]
    assert len(lines) == 1 and message in lines[0], stderr[-3000:]
    assert "Traceback" not in stderr


@pytest.mark.parametrize("args, message", MISTAKES)
def test_user_mistakes_are_one_line_and_exit_code_2(tmp_path, monkeypatch, capsys, args, message):
    """In this process (the CLI's own code path; nothing here starts Ray)."""
    from ray_job.cli import main

    (tmp_path / "data.csv").write_text("a\n")
    (tmp_path / "bad.yaml").write_text("modle: x\n")
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    one_error_line(capsys.readouterr().err, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "data.csv"]   # nothing made


# the arguments a command needs before it reads a positive option (no run directory is read
# before the option is checked)
BEFORE_OPTIONS = {"bench": ["bench"], "plan": ["plan", "--gpus", "0"],
                  "search": ["search", "nowhere", "a query"],
                  "similar": ["similar", "nowhere", "p1"],
                  "compare": ["compare", "nowhere", "elsewhere"]}


@pytest.mark.parametrize("command, flag", [(c, o.flag) for o in COMMAND_OPTIONS if o.positive
                                           for c in o.commands])
def test_a_declared_positive_option_at_zero_is_one_line_and_exit_code_2(
        tmp_path, monkeypatch, capsys, command, flag):
    from ray_job.cli import main

    monkeypatch.chdir(tmp_path)
    assert main([*BEFORE_OPTIONS[command], flag, "0"]) == 2
    one_error_line(capsys.readouterr().err, flag)


def test_a_model_the_hub_does_not_have_is_one_line_in_a_new_process(tmp_path):
    result = ray_embed("run", "--model", "no-such-org/no-such-model", cwd=tmp_path, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    one_error_line(result.stderr, "cannot load model 'no-such-org/no-such-model'")
