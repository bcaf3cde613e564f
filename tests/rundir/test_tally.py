"""Progress and --upload-every learn of shards from the sink's tally, never by listing."""
from __future__ import annotations

import io

from ray_job.rundir.progress import Progress
from ray_job.rundir.tally import ShardTally


def test_the_tally_counts_each_shard_once_in_write_order():
    tally = ShardTally()
    tally.add("part-b", 10)
    tally.add("part-a", 5)
    tally.add("part-b", 10)                    # a retried block rewrote the same shard
    assert tally.rows() == 15
    assert tally.names_since(0) == ["part-b", "part-a"] and tally.names_since(1) == ["part-a"]


def test_progress_reads_the_tally_and_lists_nothing():
    tally, out = ShardTally(), io.StringIO()
    with Progress(tally, total=100, start_rows=20, stream=out, interval=0.01) as progress:
        tally.add("part-a", 40)
        progress.tick()
    during, last = out.getvalue().splitlines()
    assert during.startswith("embedded 40/~80 rows (50%)")
    assert last.startswith("embedded 40/40 rows (100%)")       # done: what was done is exact


def test_the_total_is_estimated_from_what_was_read_and_exact_once_all_was(tmp_path):
    """One 30 MB record among 20 short ones: the sample of line sizes makes the total over
    ten times the file's 21 rows; each shard that comes back says how many rows its units
    held, and every unit read makes it exact."""
    import json

    from ray_job.read.estimate import RowEstimate
    from ray_job.read.inputs import plan_units, resolve_inputs
    from ray_job.read.keys import make_key

    path = tmp_path / "papers.jsonl"
    short = [json.dumps({"id": str(i), "title": "t", "abstract": "a" * 900}) for i in range(20)]
    huge = json.dumps({"id": "huge", "title": "t", "abstract": "b" * 30_000_000})
    path.write_text("\n".join(short[:10] + [huge] + short[10:]) + "\n")
    units = plan_units(resolve_inputs([str(path)]), 8 << 20, None)
    assert len(units) == 4
    rows = RowEstimate(units)
    before, exact = rows.total()
    assert before > 200 and not exact                   # from the sample: wild
    starts = [0] + [i + 1 for i, c in enumerate(path.read_bytes()) if c == 10][:-1]
    by_unit = [[s for s in starts if u.start <= s < u.end] for u in units]
    rows.seen(make_key(0, by_unit[0][0]), make_key(0, by_unit[0][-1]), len(by_unit[0]))
    during, exact = rows.total()
    assert during < 60 and not exact                    # 11 rows in the first 8 MiB
    for lines in by_unit[1:]:
        if lines:
            rows.seen(make_key(0, lines[0]), make_key(0, lines[-1]), len(lines))
    assert rows.total()[0] < 60


def test_every_unit_read_makes_the_total_exact(tmp_path):
    from ray_job.read.estimate import RowEstimate
    from ray_job.read.inputs import plan_units, resolve_inputs
    from ray_job.read.keys import make_key

    path = tmp_path / "papers.jsonl"
    path.write_text("".join(f'{{"id": "{i}", "abstract": "{"x" * (i % 7) * 100}"}}\n'
                            for i in range(300)))
    starts = [0] + [i + 1 for i, c in enumerate(path.read_bytes()) if c == 10][:-1]
    units = [u for u in plan_units(resolve_inputs([str(path)]), 8192, None)
             if any(u.start <= s < u.end for s in starts)]       # (a unit may start no line)
    rows = RowEstimate(units)
    for unit in units:
        lines = [s for s in starts if unit.start <= s < unit.end]
        assert rows.total()[1] is False
        rows.seen(make_key(0, lines[0]), make_key(0, lines[-1]), len(lines))
    assert rows.total() == (300, True)
