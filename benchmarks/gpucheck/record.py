"""The check's results: one JSON file rewritten (temp + rename) after every measurement, so a
run stopped at its time limit still leaves what it measured; and the closing table."""
from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path


class Skip(Exception):
    """A measurement that does not apply here (said in the results, not a failure)."""


class Results:
    def __init__(self, path: Path, header: dict):
        self.path = path
        self.data = {**header, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                     "steps": {}, "rows": []}
        self.t0 = time.monotonic()
        self.write()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def row(self, step: str, **values) -> dict:
        """One measured configuration (a line of the table)."""
        row = {"step": step, **values}
        self.data["rows"].append(row)
        self.write()
        return row

    def step(self, name: str, status: str, seconds: float, **extra) -> None:
        self.data["steps"][name] = {"status": status, "seconds": round(seconds, 1), **extra}
        self.write()

    def note(self, key: str, value) -> None:
        self.data[key] = value
        self.write()

    def write(self) -> None:
        self.data["elapsed_s"] = round(self.elapsed(), 1)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str) + "\n")
        os.replace(tmp, self.path)


def run_step(results: Results, name: str, fn, estimate_s: float, deadline: float) -> None:
    """Run one measurement unless the time left is under its estimate; a failure is recorded
    (one line in the results, the traceback on stderr) and the check goes on."""
    left = deadline - results.elapsed()
    if left < estimate_s:
        results.step(name, f"skipped: {left:.0f} s left, needs ~{estimate_s:.0f} s", 0.0)
        print(f"[{results.elapsed():6.1f} s] {name}: skipped (time)", flush=True)
        return
    start = time.monotonic()
    print(f"[{results.elapsed():6.1f} s] {name} ...", flush=True)
    try:
        fn()
        status = "ok"
    except Skip as exc:
        status = f"skipped: {exc}"
    except Exception as exc:  # noqa: BLE001 - one failing measurement must not stop the rest
        traceback.print_exc()
        status = (f"failed: {type(exc).__name__}: "
                  f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
    results.step(name, status, time.monotonic() - start)
    print(f"[{results.elapsed():6.1f} s] {name}: {status}", flush=True)


COLUMNS = (("step", "step", "s"), ("model", "model", "s"), ("variant", "variant", "s"),
           ("docs_per_s", "docs/s", ",.0f"), ("tokens_per_s", "tokens/s", ",.0f"),
           ("mfu", "MFU", ".1%"), ("min_cos", "min cos", ".5f"),
           ("peak_memory_mib", "peak MiB", ",.0f"))


def table(data: dict) -> str:
    lines = [f"{data.get('device_name', '?')} | torch {data.get('torch')} | transformers "
             f"{data.get('transformers')} | {data.get('elapsed_s')} s",
             "| " + " | ".join(title for _, title, _ in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for row in data["rows"]:
        cells = []
        for key, _, fmt in COLUMNS:
            value = row.get(key)
            cells.append("" if value is None else format(value, fmt) if fmt != "s" else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    odd = {k: v["status"] for k, v in data["steps"].items() if v["status"] != "ok"}
    lines += [f"{k}: {v}" for k, v in odd.items()]
    return "\n".join(lines)
