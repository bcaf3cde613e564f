"""Poison rows (text that cannot be UTF-8 encoded, odd types, rows the tokenizer fails on) are
rejects with a reason, never a task failure; the rest of their unit and batch goes on."""
from __future__ import annotations

import functools
import json
from dataclasses import asdict

import numpy as np
import pyarrow as pa
import pytest

from ray_job.encode.tokenize import (
    TokenizerRecipe,
    encode_texts,
    load_tokenizer,
    tokenize_batch,
    tokenize_rows,
    tokenize_table,
    tokenizer_recipe,
)
from ray_job.read.inputs import plan_units, resolve_inputs
from ray_job.read.keys import make_key
from ray_job.read.sources import rows_from_unit
from ray_job.read.text import TextTemplate
from ray_job.rundir.rejects import split_rejected
from ray_job.rundir.rundir import RunDir
from ray_job.rundir.sink import write_block_rejects
from ray_job.rundir.stage import RunContext

# valid JSON whose title decodes to a str holding a lone surrogate: not encodable as UTF-8
SURROGATE_LINE = '{"id": "p-bad", "title": "bad \\ud800 title", "abstract": "an abstract"}'


def bundled_tokenizer():
    from ray_job.encode.model.loading import bundled_model_path

    return str(bundled_model_path())


def write_jsonl(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def one_unit(path):
    [unit] = plan_units(resolve_inputs([str(path)]), 1 << 20, None)
    return unit


def good_lines(n):
    return [json.dumps({"id": f"p{i}", "title": f"title {i}", "abstract": f"abstract {i}"})
            for i in range(n)]


def test_a_lone_surrogate_in_a_title_is_rejected_and_the_rest_is_tokenized(tmp_path):
    lines = good_lines(2) + [SURROGATE_LINE] + good_lines(4)[2:]
    unit = one_unit(write_jsonl(tmp_path / "in.jsonl", lines))
    rows = rows_from_unit(unit, TextTemplate("{title}{sep}{abstract}"), "id")
    assert rows.table.column("id").to_pylist() == ["p0", "p1", "p2", "p3"]
    [reject] = rows.rejects
    assert reject["reason"] == "bad_text" and reject["id"] == "p-bad"
    assert "UTF-8" in reject["detail"]
    json.dumps(reject, ensure_ascii=False).encode()          # the reject itself can be written
    recipe = asdict(tokenizer_recipe(bundled_tokenizer(), 32))
    out = tokenize_batch(rows.table, RunContext(str(tmp_path / "run"), recipe=recipe))
    assert out.column("id").to_pylist() == ["p0", "p1", "p2", "p3"]


def test_a_lone_surrogate_in_an_id_is_rejected_with_a_printable_id(tmp_path):
    line = '{"id": "p-\\udcff", "title": "t", "abstract": "a"}'
    unit = one_unit(write_jsonl(tmp_path / "in.jsonl", good_lines(1) + [line]))
    rows = rows_from_unit(unit, TextTemplate("{title}{sep}{abstract}"), "id")
    assert rows.table.column("id").to_pylist() == ["p0"]
    [reject] = rows.rejects
    assert reject["reason"] == "bad_id"
    reject["id"].encode()                                    # escaped, so it can be written


@pytest.mark.parametrize("value", [b"bytes-id", True])
def test_ids_of_odd_types_are_rejected(tmp_path, value):
    from ray_job.read.text import RejectRow, record_id

    with pytest.raises(RejectRow) as err:
        record_id({"id": value}, "id")
    assert err.value.reason == "bad_type_id"


class PoisonTokenizer:
    """The real tokenizer, failing like a broken tokenizer on any text holding POISON."""

    def __init__(self, real):
        self.real, self.calls = real, 0

    def __call__(self, texts, **kwargs):    # the path a tokenizer without a Rust recipe takes
        self.calls += 1
        if any("POISON" in t for t in texts):
            raise TypeError("TextEncodeInput must be Union[TextInputSequence, ...]")
        return self.real(texts, **kwargs)


NO_RUST = asdict(TokenizerRecipe("any", 32))    # loads through transformers: load_tokenizer


def rows_table(texts):
    n = len(texts)
    return pa.table({"key": pa.array(range(100, 100 + n), pa.int64()),
                     "id": [f"p{i}" for i in range(n)], "text": texts,
                     "text_hash": pa.array(np.arange(n, dtype=np.uint64))})


def test_rows_the_tokenizer_fails_on_are_isolated_and_rejected():
    tok = PoisonTokenizer(load_tokenizer(bundled_tokenizer()))
    texts = [f"paper {i}" for i in range(64)]
    texts[3], texts[41] = "POISON one", "POISON two"
    out, rejects = tokenize_rows(functools.partial(encode_texts, tok, max_length=32),
                                 rows_table(texts))
    assert out.column("id").to_pylist() == [f"p{i}" for i in range(64) if i not in (3, 41)]
    clean = rows_table([t for t in texts if "POISON" not in t])
    assert out.column("input_ids").to_pylist() == tokenize_rows(
        functools.partial(encode_texts, tok.real, max_length=32), clean)[0].column(
        "input_ids").to_pylist()
    assert [(r["reason"], r["id"], r["key"]) for r in rejects] == [
        ("untokenizable", "p3", 103), ("untokenizable", "p41", 141)]
    assert "TypeError" in rejects[0]["detail"]
    assert tok.calls < 30                                   # bisected, not row by row


def test_a_tokenize_reject_is_written_by_the_sink_under_a_name_made_from_the_key(tmp_path,
                                                                               monkeypatch):
    real = load_tokenizer(bundled_tokenizer())
    monkeypatch.setattr("ray_job.encode.tokenize.load_tokenizer",
                        lambda *a, **k: PoisonTokenizer(real))
    run_dir = RunDir.at(tmp_path / "run")
    table = rows_table(["a", "POISON", "c"])
    tokenize_batch(table, RunContext(run_dir.url, recipe=NO_RUST))
    assert not (tmp_path / "run" / "rejects").exists()      # the tokenizer writes nothing
    for _ in range(2):                                      # a retried block writes the same file
        out = tokenize_batch(table, RunContext(run_dir.url, recipe=NO_RUST))
        kept, rejects = split_rejected(out)
        assert kept.column("id").to_pylist() == ["p0", "p2"]
        write_block_rejects(run_dir, rejects)
    assert [(r["reason"], r["key"]) for r in run_dir.rejects.records()] == [("untokenizable", 101)]


def test_without_a_run_directory_an_untokenizable_row_is_an_error_not_a_loss(monkeypatch):
    real = load_tokenizer(bundled_tokenizer())
    monkeypatch.setattr("ray_job.encode.tokenize.load_tokenizer",
                        lambda *a, **k: PoisonTokenizer(real))
    with pytest.raises(RuntimeError, match="untokenizable"):
        tokenize_table(rows_table(["a", "POISON"]), NO_RUST)


def test_the_whole_job_goes_on_and_rejects_the_poison_row(local_ray, sample_records, tmp_path):
    from ray_job.config import JobConfig
    from ray_job.pipeline import run

    good = sample_records[:6]
    lines = [json.dumps(r) for r in good[:3]] + [SURROGATE_LINE] + [json.dumps(r) for r in good[3:]]
    path = write_jsonl(tmp_path / "in.jsonl", lines)
    report = run(JobConfig.of(inputs=(str(path),), output=str(tmp_path / "o"), precision="fp32"))
    assert report["rows_embedded"] == 6
    assert report["rejected_by_reason"] == {"bad_text": 1}
    import h5py

    with h5py.File(tmp_path / "o" / "embeddings.h5") as h5:
        assert [i.decode() for i in h5["ids"][:]] == [r["id"] for r in good]
    [reject] = RunDir.at(tmp_path / "o").rejects.records()
    assert reject["id"] == "p-bad" and reject["key"] == make_key(0, len("\n".join(lines[:3])) + 1)


def test_any_other_failure_on_one_row_is_that_rows_reject():
    from ray_job.read.sources import row_values
    from ray_job.read.text import RejectRow

    class Broken:
        def render(self, record):
            raise ValueError("Unknown format code 'd' for object of type 'str'")

    with pytest.raises(RejectRow) as err:
        row_values({"id": "p1", "title": "t"}, Broken(), "id")
    assert err.value.reason == "bad_row" and "ValueError: Unknown format code" in err.value.detail
