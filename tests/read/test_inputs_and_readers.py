import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ray_job.errors import UserError
from ray_job.read.inputs import plan_units, resolve_inputs
from ray_job.read.readers import read_unit
from ray_job.read.text import RejectRow


def all_items(units):
    return [(u.file_index, pos, item) for u in units for pos, item in read_unit(u)]


@pytest.mark.parametrize("block_bytes", [501, 4096, 65536, 10**9])
def test_byte_range_units_read_every_line_exactly_once(sample_path, sample_records, block_bytes):
    files = resolve_inputs([str(sample_path)])
    items = all_items(plan_units(files, block_bytes, None))
    assert [item["id"] for _, _, item in items] == [r["id"] for r in sample_records]
    offsets = [pos for _, pos, _ in items]
    lines = sample_path.read_bytes().splitlines(keepends=True)
    expected = [sum(len(line) for line in lines[:i]) for i in range(len(lines))]
    assert offsets == expected  # the key's position is the line's byte offset


@pytest.mark.parametrize("limit", [1, 7, 999, 1000, 5000])
def test_limit_takes_the_first_n_records_whatever_the_block_size(sample_path, sample_records,
                                                                 limit):
    files = resolve_inputs([str(sample_path)])
    for block_bytes in (3000, 10**6):
        ids = [item["id"] for _, _, item in all_items(plan_units(files, block_bytes, limit))]
        assert ids == [r["id"] for r in sample_records[:limit]]


def test_limit_spans_several_files_in_order(tmp_path, sample_records):
    for name, part in (("a.jsonl", sample_records[:3]), ("b.jsonl", sample_records[3:8])):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in part))
    files = resolve_inputs([str(tmp_path)])
    items = all_items(plan_units(files, 100, 5))
    assert [(f, item["id"]) for f, _, item in items] == (
        [(0, r["id"]) for r in sample_records[:3]] + [(1, r["id"]) for r in sample_records[3:5]])


def test_gzip_and_parquet_read_the_same_records(tmp_path, sample_records):
    gz = tmp_path / "s.jsonl.gz"
    with gzip.open(gz, "wt") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in sample_records[:50])
    pq.write_table(pa.Table.from_pylist([{"id": r["id"], "title": r["title"],
                                          "abstract": r["abstract"]} for r in sample_records[:50]]),
                   tmp_path / "s.parquet", row_group_size=16)
    files = resolve_inputs([str(gz), str(tmp_path / "s.parquet")])
    items = all_items(plan_units(files, 1000, None))
    expected = [r["id"] for r in sample_records[:50]]
    assert [i["id"] for f, _, i in items if f == 0] == expected
    assert [i["id"] for f, _, i in items if f == 1] == expected
    assert [p for f, p, _ in items if f == 1] == list(range(50))  # parquet position = row number


def test_parquet_limit_and_row_ranges(tmp_path, sample_records, monkeypatch):
    monkeypatch.setattr("ray_job.read.inputs.PARQUET_ROWS_PER_UNIT", 7)
    pq.write_table(pa.Table.from_pylist([{"id": r["id"]} for r in sample_records[:40]]),
                   tmp_path / "s.parquet", row_group_size=5)
    files = resolve_inputs([str(tmp_path / "s.parquet")])
    items = all_items(plan_units(files, 1, 23))
    assert [i["id"] for _, _, i in items] == [r["id"] for r in sample_records[:23]]


def test_bad_lines_come_back_as_rejects_with_reasons(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"id": "1", "title": "t", "abstract": "a"}\n\n{not json\n[1, 2]\n'
                     b'{"id": "\xff\xfe"}\n{"id": "2", "title": "t", "abstract": "a"}')
    items = all_items(plan_units(resolve_inputs([str(path)]), 8, None))
    kinds = [item.reason if isinstance(item, RejectRow) else item["id"] for _, _, item in items]
    assert kinds == ["1", "blank_line", "bad_json", "not_an_object", "bad_utf8", "2"]


def test_truncated_gzip_keeps_what_was_readable_and_rejects_the_rest(tmp_path, sample_records):
    data = gzip.compress("".join(json.dumps(r) + "\n" for r in sample_records[:200]).encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    items = all_items(plan_units(resolve_inputs([str(path)]), 1000, None))
    assert isinstance(items[-1][2], RejectRow) and items[-1][2].reason == "truncated_file"
    good = [i["id"] for _, _, i in items[:-1]]
    assert 0 < len(good) < 200 and good == [r["id"] for r in sample_records[: len(good)]]


def test_user_mistakes_in_inputs_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="input not found"):
        resolve_inputs([str(tmp_path / "nope.jsonl")])
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(UserError, match="unknown input type"):
        resolve_inputs([str(tmp_path / "data.csv")])
    with pytest.raises(UserError, match="holds no"):
        resolve_inputs([str(tmp_path)])


def test_parquet_units_follow_row_groups_and_read_only_the_columns_used(tmp_path, sample_records,
                                                                        monkeypatch):
    from ray_job.read.inputs import row_group_units
    from ray_job.read.readers import read_unit

    assert row_group_units([128] * 8, 300) == [(0, 256), (256, 512), (512, 768), (768, 1024)]
    assert row_group_units([5, 1000, 5, 5], 20) == [(0, 5), (5, 1005), (1005, 1015)]
    rows = [{"id": r["id"], "title": r["title"], "abstract": r["abstract"], "junk": "x" * 100}
            for r in sample_records[:30]]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "p.parquet", row_group_size=10)
    monkeypatch.setattr("ray_job.read.inputs.PARQUET_ROWS_PER_UNIT", 20)
    units = plan_units(resolve_inputs([str(tmp_path / "p.parquet")]), 1, 25)
    assert [(u.start, u.end) for u in units] == [(0, 20), (20, 25)]
    got = [record for u in units for _, record in read_unit(u, ("title", "id"))]
    assert got == [{"id": r["id"], "title": r["title"]} for r in rows[:25]]


def test_a_local_glob_is_expanded_in_name_order(tmp_path, sample_records):
    """The guide says a glob works as an input; the shell may not expand a quoted one."""
    (tmp_path / "data").mkdir()
    for name, part in (("b.jsonl", sample_records[2:4]), ("a.jsonl", sample_records[:2]),
                       ("notes.txt", [])):
        (tmp_path / "data" / name).write_text("".join(json.dumps(r) + "\n" for r in part))
    files = resolve_inputs([str(tmp_path / "data" / "*.jsonl")])
    assert [f.path.rsplit("/", 1)[1] for f in files] == ["a.jsonl", "b.jsonl"]
    assert [i["id"] for _, _, i in all_items(plan_units(files, 1000, None))] == [
        r["id"] for r in sample_records[:4]]
    with pytest.raises(UserError, match="no .jsonl.* file matches"):
        resolve_inputs([str(tmp_path / "data" / "*.parquet")])


@pytest.mark.parametrize("compress", [False, True])
def test_a_byte_order_mark_does_not_reject_the_first_paper(tmp_path, sample_records, compress):
    body = b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in sample_records[:3]).encode()
    path = tmp_path / ("bom.jsonl.gz" if compress else "bom.jsonl")
    path.write_bytes(gzip.compress(body) if compress else body)
    items = all_items(plan_units(resolve_inputs([str(path)]), 1000, None))
    assert [i["id"] for _, _, i in items] == [r["id"] for r in sample_records[:3]]


@pytest.mark.parametrize("name", ["export.json", "export.json.gz"])
def test_a_json_array_file_is_read_as_records_keyed_by_array_index(tmp_path, sample_records, name):
    records = sample_records[:5] + [["not", "a", "record"]]
    text = "\ufeff" + json.dumps(records, indent=2)           # pretty-printed, with a BOM
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    files = resolve_inputs([str(path)])
    items = all_items(plan_units(files, 100, None))
    assert [p for _, p, _ in items] == list(range(6))
    assert [i["id"] for _, _, i in items[:5]] == [r["id"] for r in sample_records[:5]]
    assert isinstance(items[5][2], RejectRow) and items[5][2].reason == "not_an_object"
    limited = all_items(plan_units(files, 100, 2))
    assert [i["id"] for _, _, i in limited] == [r["id"] for r in sample_records[:2]]


def test_a_broken_json_array_is_one_reject_not_one_per_line(tmp_path, sample_records):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(sample_records[:3], indent=2)[:-20])
    items = all_items(plan_units(resolve_inputs([str(path)]), 100, None))
    assert len(items) == 1 and items[0][2].reason == "bad_json"
