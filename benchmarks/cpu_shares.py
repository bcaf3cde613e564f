"""Where a local `ray-embed run` spends the machine's CPU, by process kind, and when it starts.

    .venv/bin/python benchmarks/cpu_shares.py [--scale 4] [--json]

Runs the whole command on the real sample repeated `--scale` times (new ids) and samples, every
0.5 s, the CPU time (utime + stime from /proc) of every process in the run's own tree (the
driver, the Ray processes it starts, their workers; not other users' processes), by kind: the
replica (Encoder actor), the data path's workers, Ray's own daemons and helper actors, the
driver. With it: the report's start-up and steady rate, and the Ray Data operators' task CPU.
Shares, not wall times, are what a shared machine can still measure: a daemon that polls costs
the same CPU per second whatever else runs.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

# (substring of the command line, kind), first match wins
KINDS = (("MapBatches(Encoder)", "replica"), ("Encoder", "replica"),
         ("units_to_rows", "read + tokenize tasks"), ("tokenize", "read + tokenize tasks"),
         ("write_shard", "shard-write tasks"), ("ray::IDLE", "idle workers"),
         ("raylet", "raylet"), ("gcs_server", "gcs"), ("log_monitor", "log monitor"),
         ("dashboard", "dashboard agent"), ("DashboardAgent", "dashboard agent"),
         ("monitor.py", "autoscaler monitor"), ("RuntimeEnvAgent", "runtime-env agent"),
         ("_StatsActor", "Ray Data helper actors"),
         ("AutoscalingCoordinator", "Ray Data helper actors"),
         ("ActorLocationTracker", "Ray Data helper actors"), ("ray_job", "driver"),
         ("ray::", "other Ray workers"))
HZ = os.sysconf("SC_CLK_TCK")


def kind_of(cmdline: str) -> str:
    return next((kind for key, kind in KINDS if key in cmdline), "other")


def processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, CPU ticks, command line), from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        found[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]), cmd)
    return found


def tree(procs: dict, root: int) -> set[int]:
    members, grew = {root}, True
    while grew:
        grew = False
        for pid, (ppid, _, _) in procs.items():
            if ppid in members and pid not in members:
                members.add(pid)
                grew = True
    return members


def shares(last_seen: dict[int, tuple[str, int]]) -> dict[str, dict]:
    """kind -> CPU-seconds and process count, from each process's last sample."""
    out: dict = collections.defaultdict(lambda: {"cpu_s": 0.0, "processes": 0})
    for kind, ticks in last_seen.values():
        out[kind]["cpu_s"] += ticks / HZ
        out[kind]["processes"] += 1
    return {k: {"cpu_s": round(v["cpu_s"], 2), "processes": v["processes"]}
            for k, v in sorted(out.items(), key=lambda kv: -kv[1]["cpu_s"])}


def measure(scale: int, scratch: Path) -> dict:
    from datapath import write_corpus

    corpus = write_corpus(1000 * scale, scratch / "corpus.jsonl")
    out = scratch / "out"
    child = subprocess.Popen([sys.executable, "-m", "ray_job", "run", "--input", str(corpus),
                              "--output", str(out), "--fresh"], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    started, seen = time.time(), {}
    while child.poll() is None:
        procs = processes()
        for pid in tree(procs, child.pid):
            seen[pid] = (kind_of(procs[pid][2]), procs[pid][1])
        time.sleep(0.5)
    wall = time.time() - started
    if child.returncode:
        raise RuntimeError(child.stderr.read().decode()[-2000:])
    report = json.loads((out / "report.json").read_text())
    pipe = report.get("pipeline") or {}
    cpu = shares(seen)
    total = sum(v["cpu_s"] for v in cpu.values())
    return {"docs": report["rows_embedded"], "wall_s": round(wall, 1), "load": os.getloadavg(),
            "startup_s": pipe.get("startup_s"), "steady_docs_per_s": pipe.get("steady_docs_per_s"),
            "encode_wall_s": report.get("encode_wall_s"), "cpu_total_s": round(total, 1),
            "cpu_by_kind": cpu, "operators": pipe.get("operators", [])}


def format_table(result: dict) -> str:
    lines = [f"{result['docs']:,} docs, command {result['wall_s']} s, start-up "
             f"{result['startup_s']} s, steady {result['steady_docs_per_s']} docs/s, load "
             f"{', '.join(f'{x:.1f}' for x in result['load'])}",
             "| process kind | CPU-s | share | processes |", "|---|---:|---:|---:|"]
    for kind, v in result["cpu_by_kind"].items():
        lines.append(f"| {kind} | {v['cpu_s']} | {v['cpu_s'] / result['cpu_total_s']:.1%} | "
                     f"{v['processes']} |")
    lines += ["", "| Ray Data operator | task CPU-s | span s |", "|---|---:|---:|"]
    lines += [f"| {op['operator']} | {op['cpu_s']} | {op['span_s']} |"
              for op in result["operators"]]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cpu-shares-") as scratch:
        result = measure(args.scale, Path(scratch))
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
