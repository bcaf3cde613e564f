"""Inputs at scale: compressed JSON Lines (.gz, .zst) streamed in bounded chunks with the same
keys as a whole read, long lines read once (or rejected as line_too_long), texts capped in
bytes before tokenizing (the hash stays the full text's)."""
from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import zstandard

from ray_job.read import lines as lines_mod
from ray_job.read import readers
from ray_job.read.inputs import plan_units, resolve_inputs
from ray_job.read.lines import first_line_start, iter_lines
from ray_job.read.previous import text_hash
from ray_job.read.readers import read_unit
from ray_job.read.sources import rows_from_unit
from ray_job.read.text import RejectRow, TextTemplate, cap_text, text_byte_cap, text_cap_summary

ROOT = Path(__file__).resolve().parents[2]


def jsonl(records, extra=()) -> bytes:
    lines = [json.dumps(r) + "\n" for r in records]
    for at, line in extra:
        lines.insert(at, line)
    return "".join(lines).encode()


@pytest.fixture
def data(sample_records) -> bytes:
    """Real records with a blank and a bad line among them, no newline at the end."""
    return jsonl(sample_records[:300], [(5, "\n"), (9, "not json\n")]).rstrip(b"\n")


def items_of(path, block_bytes=1 << 20, limit=None):
    """(unit name, position, reason or record) of every item, in plan order."""
    units = plan_units(resolve_inputs([str(path)]), block_bytes, limit)
    return [(u.name, p, i.reason if isinstance(i, RejectRow) else i)
            for u in units for p, i in read_unit(u)]


def positions(items):
    return [(p, i) for _, p, i in items]


def zst(data: bytes, frames: int = 1) -> bytes:
    step = -(-len(data) // frames)
    return b"".join(zstandard.ZstdCompressor().compress(data[i:i + step])
                    for i in range(0, len(data), step))


# ---- the line splitter itself ----

@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_lines_from_any_chunking_are_the_lines_readline_gives(chunk):
    data = b"ab\n\ncdef\nghij" + b"x" * 100 + b"\nlast"
    chunks = (data[i:i + chunk] for i in range(0, len(data), chunk))
    expected, pos = [], 0
    for raw in io.BytesIO(data):
        expected.append((pos, raw))
        pos += len(raw)
    assert list(iter_lines(chunks)) == expected


def test_a_line_over_the_cap_is_rejected_and_the_next_lines_are_read():
    data = b"a\n" + b"y" * 50 + b"\nb\n" + b"z" * 30 + b"\n"
    chunks = [data[i:i + 8] for i in range(0, len(data), 8)]
    got = [(p, r.reason if isinstance(r, RejectRow) else r)
           for p, r in iter_lines(chunks, max_line=20)]
    assert got == [(0, b"a\n"), (2, "line_too_long"), (53, b"b\n"), (55, "line_too_long")]


def test_damage_ends_the_lines_with_a_truncated_file_reject_at_the_incomplete_line():
    def chunks():
        yield b"a\nbc\nde"
        raise EOFError("cut")
    got = list(iter_lines(chunks(), name="f", damaged=(EOFError,)))
    assert got[:2] == [(0, b"a\n"), (2, b"bc\n")]
    assert got[2][0] == 5 and got[2][1].reason == "truncated_file" and "cut" in got[2][1].detail


def test_a_range_inside_one_line_reads_only_itself_and_has_no_line():
    data = b"x" * 1000 + b"\n" + b"y\n"
    assert first_line_start(io.BytesIO(data), 100, 600, chunk_bytes=64) is None
    assert first_line_start(io.BytesIO(data), 100, 1001, chunk_bytes=64) is None  # \n at 1000
    assert first_line_start(io.BytesIO(data), 100, 1002, chunk_bytes=64) == 1001
    assert first_line_start(io.BytesIO(data), 1001, 1003) == 1001


# ---- compressed files: the same items as the plain file, read whole ----

@pytest.mark.parametrize("kind", ["gz", "gz-members", "zst", "zst-frames"])
def test_compressed_files_stream_the_same_keys_and_rows_as_the_plain_file(
        tmp_path, data, kind, monkeypatch):
    plain = tmp_path / "p.jsonl"
    plain.write_bytes(data)
    packed = {"gz": lambda: gzip.compress(data),
              "gz-members": lambda: gzip.compress(data[:7000]) + gzip.compress(data[7000:]),
              "zst": lambda: zst(data), "zst-frames": lambda: zst(data, 5)}[kind]()
    path = tmp_path / ("c.jsonl." + kind.split("-")[0])
    path.write_bytes(packed)
    monkeypatch.setattr(lines_mod, "CHUNK_BYTES", 4096)      # many chunks per file
    expected = positions(items_of(plain))
    got = items_of(path)
    assert len({name for name, _, _ in got}) == 1            # still one unit per file
    assert positions(got) == expected and len(got) == 302
    assert positions(items_of(path, limit=7)) == expected[:7]


@pytest.mark.parametrize("kind", ["gz", "zst"])
@pytest.mark.parametrize("cut", [0.5, -3])
def test_a_cut_compressed_file_keeps_every_whole_line_then_rejects_the_rest(
        tmp_path, data, sample_records, kind, cut):
    packed = gzip.compress(data) if kind == "gz" else zst(data, 3)
    end = int(len(packed) * cut) if cut > 0 else len(packed) + cut
    path = tmp_path / f"cut.jsonl.{kind}"
    path.write_bytes(packed[:end])
    got = items_of(path)
    assert got[-1][2] == "truncated_file"
    plain = tmp_path / "p.jsonl"
    plain.write_bytes(data)
    whole = positions(items_of(plain))
    assert positions(got[:-1]) == whole[:len(got) - 1] and len(got) - 1 < len(whole)
    rows = rows_from_unit(plan_units(resolve_inputs([str(path)]), 1 << 20, None)[0],
                          TextTemplate("{title}{sep}{abstract}"), "id")
    assert rows.seen == rows.table.num_rows + len(rows.rejects)        # adds up per unit
    assert rows.rejects[-1]["reason"] == "truncated_file"


def test_corrupt_gzip_data_is_a_reject_not_a_failed_task(tmp_path, data):
    packed = gzip.compress(data)
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(packed[:2000] + bytes(range(256)) * 8 + packed[4000:])
    got = items_of(path)
    assert got[-1][2] == "truncated_file" and all(isinstance(i, dict) or i in
                                                  ("blank_line", "bad_json") for *_, i in got[:-1])


def test_a_json_array_in_a_zst_file_reads_like_the_gzip_one(tmp_path, sample_records):
    array = json.dumps(sample_records[:20]).encode()
    (tmp_path / "a.json.gz").write_bytes(gzip.compress(array))
    (tmp_path / "a.json.zst").write_bytes(zst(array))
    gz, zs = items_of(tmp_path / "a.json.gz"), items_of(tmp_path / "a.json.zst")
    assert positions(gz) == positions(zs) == [(i, r) for i, r in enumerate(sample_records[:20])]


# ---- long lines: read once, or rejected with a bounded read ----

class CountingFile(io.FileIO):
    read_bytes = 0

    def read(self, size=-1):
        data = super().read(size)
        CountingFile.read_bytes += len(data)
        return data


@pytest.fixture
def long_line_file(tmp_path, sample_records):
    long = dict(sample_records[1], abstract="w " * 1_500_000)            # a 3 MB line
    path = tmp_path / "long.jsonl"
    path.write_bytes(jsonl([sample_records[0], long] + sample_records[2:40]))
    return path


def test_a_long_line_is_read_once_and_units_inside_it_yield_nothing(long_line_file, monkeypatch):
    monkeypatch.setattr(readers, "open_stream", lambda path, *_: CountingFile(path, "rb"))
    CountingFile.read_bytes = 0
    got = items_of(long_line_file, block_bytes=64 * 1024)
    size = long_line_file.stat().st_size
    assert [p for _, p, _ in got] == [p for p, _ in iter_lines([long_line_file.read_bytes()])]
    units_with_rows = {name for name, _, _ in got}
    assert len(units_with_rows) < len(plan_units(resolve_inputs([str(long_line_file)]),
                                                 64 * 1024, None)) - 40
    # the line is read by its own unit and scanned once by the units inside it: not 48x
    assert CountingFile.read_bytes < 2.2 * size


def test_a_line_over_the_cap_is_rejected_and_the_rest_of_the_file_read(
        long_line_file, monkeypatch, sample_records):
    monkeypatch.setattr(lines_mod, "MAX_LINE_BYTES", 1 << 20)
    for path, block in ((long_line_file, 64 * 1024), (long_line_file, 1 << 30)):
        got = items_of(path, block_bytes=block)
        assert [i if isinstance(i, str) else i["id"] for *_, i in got] == \
            [sample_records[0]["id"], "line_too_long"] + [r["id"] for r in sample_records[2:40]]
    gz = long_line_file.with_suffix(".jsonl.gz")
    gz.write_bytes(gzip.compress(long_line_file.read_bytes()))
    assert positions(items_of(gz)) == positions(items_of(long_line_file))


# ---- the text cap ----

def test_cap_text_cuts_at_a_character_and_word_boundary():
    assert cap_text("short", 100) == ("short", False)
    assert cap_text("é" * 30, 100) == ("é" * 30, False)              # 60 bytes
    text, capped = cap_text("aé" * 40, 101)                           # no spaces: char boundary
    assert capped and len(text.encode()) <= 101 and text == "aé" * 33 + "a"
    text, capped = cap_text("word " * 40, 102)
    assert capped and text == "word " * 19 + "word" and len(text.encode()) <= 102
    assert cap_text("x" * 200, None) == ("x" * 200, False)


def test_the_cap_never_changes_the_first_tokens_of_the_sample(sample_records):
    """With the cap at 16 bytes per token, the first N tokens of every sample text are the
    same capped or not (N = 32 here, a 512-byte cap, so that most abstracts are cut)."""
    from transformers import AutoTokenizer

    from ray_job.encode.model.loading import bundled_model_path

    tok = AutoTokenizer.from_pretrained(bundled_model_path())
    n = 32
    template = TextTemplate("{title}{sep}{abstract}", sep=" [SEP] ")
    texts = [template.render(r) for r in sample_records]
    capped = [cap_text(t, text_byte_cap(n))[0] for t in texts]
    assert sum(c != t for c, t in zip(capped, texts, strict=True)) > 500             # the cap bit
    full = tok(texts, truncation=True, max_length=n)["input_ids"]
    cut = tok(capped, truncation=True, max_length=n)["input_ids"]
    assert full == cut


def test_capped_rows_keep_the_full_texts_hash_and_are_counted_on_every_attempt(
        tmp_path, sample_records):
    path = tmp_path / "p.jsonl"
    path.write_bytes(jsonl(sample_records[:50]))
    unit = plan_units(resolve_inputs([str(path)]), 1 << 20, None)[0]
    template = TextTemplate("{title}{sep}{abstract}", max_bytes=400)
    rows = rows_from_unit(unit, template, "id")
    full = [TextTemplate("{title}{sep}{abstract}").render(r) for r in sample_records[:50]]
    assert rows.table["text_hash"].to_pylist() == [text_hash(t) for t in full]
    texts = rows.table["text"].to_pylist()
    assert all(len(t.encode()) <= 400 and f.startswith(t) for t, f in zip(texts, full, strict=True))
    assert rows.capped == sum(len(f.encode()) > 400 for f in full) > 0
    import numpy as np
    done = np.sort(np.array(rows.table["key"].to_pylist(), dtype=np.int64))
    again = rows_from_unit(unit, template, "id", done)                # a resume: all done
    assert again.table.num_rows == 0 and again.capped == rows.capped
    reads = {"u1": {"seen": 3, "texts_capped": 2, "text_max_bytes": 400},
             "u2": {"seen": 1, "texts_capped": 1, "text_max_bytes": 400}}
    assert text_cap_summary(reads) == {"max_bytes": 400, "texts_capped": 3}


# ---- end to end: a .zst input (and a cut one) through the real pipeline ----


def test_zst_inputs_run_end_to_end_with_reconciliation_and_the_text_cap(
        ray_embed, tmp_path, sample_records):
    long = dict(sample_records[3], abstract="quantum " * 2000)           # 16 KB > the cap
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.jsonl.zst").write_bytes(zst(jsonl(sample_records[:3] + [long] + sample_records[4:20]),
                                        2))
    cut = zst(jsonl(sample_records[20:60]), 4)       # a zst block is 128 KiB: frames
    (d / "b-cut.jsonl.zst").write_bytes(cut[:len(cut) // 2])
    result = ray_embed("run", "--input", str(d), "--output", "o", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["rejected_by_reason"] == {"truncated_file": 1}
    assert report["reconciliation"]["units"] == 2                     # every unit added up
    assert report["rows_read"] == report["rows_embedded"] + 1
    assert report["text_cap"] == {"max_bytes": 256 * 16, "texts_capped": 1}   # MiniLM: 256
    with h5py.File(tmp_path / "o" / "embeddings.h5") as h5:
        ids = [i.decode() for i in h5["ids"][:]]
    assert ids[:20] == [r["id"] for r in sample_records[:20]]
    assert 20 < len(ids) < 60


def test_gzip_memory_benchmark_runs_and_prints_its_numbers(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gzip_memory.py"),
                          "--mb", "2", "--dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "rows" in out.stdout and "peak RSS" in out.stdout
