"""Hypothesis strategies for generated corpora: ids of any Unicode (NUL, whitespace, lone
surrogates, numbers of every JSON kind), texts with control characters and surrogates, and
malformed and mixed files (JSONL, .ndjson, .json lines or one array, .jsonl.gz, Parquet with
row groups, one of them maybe damaged). A corpus is a list of GenFile; `GenFile.write` puts
its bytes on disk and `GenFile.items` says, position by position, what a reader must find
there (corpus_oracle.py turns that into the expected output)."""
from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st

MISSING = object()          # a field left out of the record
# ids that collide when a reader strips, pads, folds or normalises them
ID_POOL = ["p1", "p1\x00", "\x00p1", "p\x00" + "1", "1", " 1", "1 ", "\t1", "p1 ", "P1", "", " ",
           "\u3000", "\x00", "\u00e9", "e\u0301", "\ufeffp1", "p1\n", "\x1c", "\u2028", "0", "-0"]
WORDS = ["quantum", "graph", "neural", "sparse", "lattice", "entropy", "proof", "spin", "flow"]


def _with_surrogate(s: str) -> str:
    return s + "\ud800"


ids = st.one_of(
    st.sampled_from(ID_POOL), st.sampled_from(ID_POOL), st.sampled_from(ID_POOL),
    st.integers(-3, 3), st.integers(-(2**63), 2**63 - 1), st.integers(10**20, 10**30),
    st.text(max_size=6), st.text(st.characters(codec="utf-8"), max_size=3).map(_with_surrogate),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x1f), min_size=1, max_size=3),
    st.text(alphabet="ab \x00", min_size=300, max_size=301),      # long ids (variable-length h5)
    st.sampled_from([True, False, 1.0, 1.5, None, [], {}, [1], {"a": 1}, float("nan")]),
)
plain_text = st.lists(st.sampled_from(WORDS), min_size=1, max_size=8).map(" ".join)
odd_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=30)
texts = st.one_of(
    plain_text, plain_text, plain_text, odd_text,
    st.text(alphabet=" \t\n\r\x0b\x0c\x1c\x85\u2028\u3000", max_size=4),     # whitespace only
    st.builds(lambda a, b: a + "\x00\x07\x1b" + b, plain_text, plain_text),  # control characters
    plain_text.map(_with_surrogate), plain_text.map(lambda s: s + "\U0001F600"),
    st.sampled_from([None, 42, 1.5, True, ["a"], {"t": "x"}]),
)
# lines no JSON encoder writes
RAW_LINES = [b"{bad", b"", b"   ", b"[1, 2]", b'"just a string"', b"null", b"\xff\xfe{}",
             b'{"id": "x", "title": "t", "abstract": "a"} trailing',
             b'{"id": ' + b"1" * 5000 + b', "title": "t", "abstract": "a"}',
             b"[" * 100_000, b'{"id": "x\xc3", "title": "t", "abstract": "a"}']


@st.composite
def records(draw) -> dict:
    record = {}
    for name, values in (("id", ids), ("title", texts), ("abstract", texts)):
        value = draw(st.one_of(values, values, values, values, st.just(MISSING)))
        if value is not MISSING:
            record[name] = value
    if draw(st.booleans()):
        record["extra"] = draw(st.sampled_from([1, "x", None, [1, 2]]))
    return record


good_ids = st.one_of(st.sampled_from(["p1", "1", " 1", "1 ", "P1", "\u00e9", "e\u0301", "0"]),
                     st.integers(-5, 50),
                     st.text(st.characters(codec="utf-8", exclude_characters="\x00"),
                             min_size=1, max_size=5))
good_records = st.fixed_dictionaries({"id": good_ids, "title": plain_text, "abstract": plain_text})


def json_line(record: dict, ascii_only: bool) -> bytes:
    """One JSON line as an exporter writes it (non-ASCII escaped or raw; a raw lone surrogate
    makes the line invalid UTF-8, as a careless exporter's would be)."""
    return json.dumps(record, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@dataclass
class GenFile:
    stem: str
    kind: str                 # jsonl | json_array | parquet | jsonl_gz
    ext: str
    lines: list[bytes] = field(default_factory=list)    # jsonl kinds
    values: list = field(default_factory=list)          # json_array items / parquet rows
    damaged_array: bool = False
    group_rows: int = 2
    id_type: str = "string"                             # parquet id column: string | int64
    damaged_group: int | None = None                    # parquet: this row group's bytes broken

    @property
    def name(self) -> str:
        return self.stem + self.ext

    def write(self, folder: Path) -> Path:
        path = Path(folder) / self.name
        if self.kind == "parquet":
            path.write_bytes(self._parquet_bytes())
        elif self.kind == "json_array":
            text = json.dumps(self.values).encode("utf-8", "surrogatepass")
            path.write_bytes(text[: len(text) // 2] if self.damaged_array else text)
        else:
            data = b"".join(line + b"\n" for line in self.lines)
            path.write_bytes(gzip.compress(data, mtime=0) if self.kind == "jsonl_gz" else data)
        return path

    def _parquet_bytes(self) -> bytes:
        import pyarrow as pa
        import pyarrow.parquet as pq

        id_type = pa.string() if self.id_type == "string" else pa.int64()
        types = {"id": id_type, "title": pa.string(), "abstract": pa.string()}
        table = pa.table({c: pa.array([r.get(c) for r in self.values], t)
                          for c, t in types.items()})
        sink = io.BytesIO()
        pq.write_table(table, sink, row_group_size=self.group_rows, compression="snappy")
        data = bytearray(sink.getvalue())
        if self.damaged_group is not None:
            meta = pq.ParquetFile(io.BytesIO(bytes(data))).metadata.row_group(self.damaged_group)
            for c in range(meta.num_columns):          # every page header of the group broken
                start = meta.column(c).data_page_offset
                data[start:start + 8] = b"\xff" * 8
        return bytes(data)


def _parquet_value(value, id_type: str, column: str):
    """What a Parquet column of that type can hold (generated values that it cannot are null)."""
    if column == "id" and id_type == "int64":
        ok = isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
        return value if ok else None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return None
        return value
    return None


@st.composite
def gen_files(draw, index: int) -> GenFile:
    kind = draw(st.sampled_from(["jsonl", "jsonl", "json_array", "parquet", "jsonl_gz"]))
    stem = f"f{index:02d}"
    rows = draw(st.lists(st.one_of(good_records, records(), good_records), max_size=12))
    if kind == "json_array":
        items = list(rows) + draw(st.lists(st.sampled_from([1, "x", None, [1]]), max_size=2))
        return GenFile(stem, kind, ".json", values=draw(st.permutations(items)),
                       damaged_array=draw(st.integers(0, 9)) == 0)
    if kind == "parquet":
        id_type = draw(st.sampled_from(["string", "int64"]))
        values = [{c: _parquet_value(r.get(c), id_type, c) for c in ("id", "title", "abstract")}
                  for r in rows]
        group_rows = draw(st.integers(1, 4))
        groups = -(-len(values) // group_rows)
        damaged = draw(st.one_of(st.none(), st.integers(0, groups - 1))) if groups > 1 else None
        return GenFile(stem, kind, ".parquet", values=values, group_rows=group_rows,
                       id_type=id_type, damaged_group=damaged)
    ascii_only = draw(st.booleans())
    lines = [json_line(r, ascii_only) for r in rows]
    for _ in range(draw(st.integers(0, 2))):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(RAW_LINES)))
    if kind == "jsonl_gz":
        return GenFile(stem, kind, ".jsonl.gz", lines=lines)
    return GenFile(stem, kind, draw(st.sampled_from([".jsonl", ".ndjson", ".json"])), lines=lines)


@st.composite
def corpora(draw, max_files: int = 3) -> list[GenFile]:
    n = draw(st.integers(1, max_files))
    return [draw(gen_files(i)) for i in range(n)]
