"""How fast a run went, start-up apart from steady state, and where the time went (pure).

A short run is mostly start-up (Ray, the replicas loading the model, the pipeline filling), so
its whole-run rate says little about a long one. The steady-state rate counts only the rows of
the shards written after the first one, over the time between the first shard and the last.
"""
from __future__ import annotations


def steady_state(timeline: list[tuple[float, int]], started: float) -> dict:
    """`timeline`: (wall time, rows so far) per shard written, in order; `started`: the wall
    time the encode phase began. -> start-up seconds (to the first shard), the steady docs/s
    (None with fewer than two shards) and the rows it was measured on."""
    if not timeline:
        return {"startup_s": None, "steady_docs_per_s": None, "steady_rows": 0}
    (t_first, rows_first), (t_last, rows_last) = timeline[0], timeline[-1]
    span, rows = t_last - t_first, rows_last - rows_first
    return {"startup_s": round(t_first - started, 3),
            "steady_docs_per_s": round(rows / span, 2) if span > 0 and rows > 0 else None,
            "steady_rows": rows}


def operator_times(summary) -> list[dict]:
    """Per Ray Data operator of a finished dataset (`Dataset.get_stats_summary()`): its name,
    the summed wall and CPU seconds of its tasks, the rows it put out, and the span from its
    first task's start to its last task's end. Parents (the operators upstream) first."""
    out: list[dict] = []
    for parent in getattr(summary, "parents", None) or []:
        out.extend(operator_times(parent))
    for op in summary.operators_stats:
        out.append({
            "operator": op.operator_name,
            "wall_s": _total(op.wall_time),
            "cpu_s": _total(op.cpu_time),
            "rows": int(op.output_num_rows.sum) if op.output_num_rows else None,
            "span_s": (round(op.latest_end_time - op.earliest_start_time, 3)
                       if op.earliest_start_time and op.latest_end_time else None),
        })
    return out


def _total(stat) -> float | None:
    return round(float(stat.sum), 3) if stat is not None else None


def per_core(docs_per_s: float | None, cpus: float) -> float | None:
    return round(docs_per_s / cpus, 2) if docs_per_s and cpus > 0 else None


def data_path_rate(operators: list[dict], rows: int, encoder_name: str = "Encoder") -> dict:
    """Docs per CPU-second of everything but the encoder (read, text, tokenize, shard write),
    from the operators' summed task CPU time (all of a task's threads): what one CPU core
    feeds an encoder with. None when the stats hold no CPU time."""
    cpu = sum(op["cpu_s"] or 0.0 for op in operators if encoder_name not in op["operator"])
    rate = round(rows / cpu, 1) if cpu > 0 and rows else None
    return {"data_path_cpu_s": round(cpu, 3), "data_path_docs_per_cpu_s": rate,
            "cores_per_1000_docs_per_s": round(1000 / rate, 3) if rate else None}
