"""Resume state and --previous at scale: driver memory and time, before and after.

    .venv/bin/python benchmarks/resume_state.py --shards 500 --keys 20000 --previous-rows 10000000

Resume: a synthetic run directory of key-only shards (named and read as real ones), `--keys`
consecutive keys each, read units of `--unit-keys` keys (so a shard spans two units), every
unit's reads record written as the read stage writes it, all units finished except the last
`--unfinished`. Each variant runs in a fresh child process whose peak RSS above its imports
is read from the kernel (ru_maxrss minus VmRSS after the imports):
  before: the driver's old code (RunDir.done_keys then: np.unique of every shard's keys, one
          array the driver held and ray.put to every read task)
  after:  resume.units_to_read (one shard's keys at a time -> units to read + their shards)
  task:   unit_done_keys for one unfinished unit (what its read task builds)

--previous: a synthetic embeddings.h5 (ids, text hashes, the attrs load_previous checks; the
embeddings dataset is allocated but never read), with and without the `id_hashes` dataset:
  load_previous as it was (a Python loop of blake2b per id), as it is now (map over C
  callables), and with stored id hashes; classifying `--classify-rows` rows one call per row
  (Previous.classify) and in one numpy pass (id_hashes + classify_many).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ray_job.read.inputs import ReadUnit  # noqa: E402
from ray_job.read.keys import make_key  # noqa: E402
from ray_job.read.resume import resume_fields  # noqa: E402
from ray_job.rundir.rundir import RunDir  # noqa: E402
from ray_job.rundir.shards import shard_name  # noqa: E402

CHILD = """
import json, resource, sys, time
from ray_job.read.plan import ReadPlan
from ray_job.read.resume import unit_done_keys, units_to_read
from ray_job.rundir.rundir import RunDir

def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

run_dir = RunDir.at(sys.argv[1])
units = ReadPlan.from_dict(run_dir.load_plan()).units
base = rss_kib()
t = time.perf_counter()
if sys.argv[2] == "before":        # the driver's code before: every key in one array, ray.put
    import numpy as np
    done = np.unique(np.concatenate([keys for _, keys in run_dir.shards.keys()]))
    what = {"keys": len(done), "shipped_bytes": done.nbytes}
elif sys.argv[2] == "after":
    todo, shards = units_to_read(run_dir, units, None)
    what = {"units_to_read": len(todo), "shard_names_shipped": sum(map(len, shards))}
else:
    todo, shards = units_to_read(run_dir, units, None)
    base = rss_kib()
    t = time.perf_counter()
    keys = unit_done_keys(todo[0], (run_dir.shards.read(n, ["key"]).column("key").to_numpy()
                                    for n in shards[0]))
    what = {"unit_done_keys": len(keys)}
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({**what, "seconds": round(seconds, 2),
                  "peak_above_imports_mib": round((peak - base) / 1024, 1)}))
"""


def write_run(out: Path, shards: int, keys: int, unit_keys: int, unfinished: int) -> int:
    """Key-only shards (what a resume reads of a shard) and the plan + reads records."""
    run_dir = RunDir.at(out)
    folder = out / "shards"
    folder.mkdir(parents=True)
    schema = pa.schema([("key", pa.int64())])
    for s in range(shards):
        k = np.arange(s * keys, (s + 1) * keys, dtype=np.int64)     # file 0, rows as positions
        with ipc.new_file(str(folder / shard_name(k)), schema) as writer:
            writer.write_table(pa.table({"key": k}, schema=schema))
    total = shards * keys
    units = [ReadUnit(0, "/in.parquet", "parquet", None, lo, min(lo + unit_keys, total))
             for lo in range(0, total, unit_keys)]
    run_dir.write_plan({"manifest": [], "block_bytes": 0, "limit": None,
                        "units": [u.__dict__ for u in units]})
    for i, u in enumerate(units):
        seen = u.end - u.start + (1 if i >= len(units) - unfinished else 0)   # a lost row
        run_dir.reads.write_unit(u.name, {"seen": seen, **resume_fields(u, 0, 0, None)})
    assert make_key(0, total) == total
    return len(units)


def child(out: Path, variant: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(out), variant], capture_output=True,
                          text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"})
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_resume(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        t = time.perf_counter()
        n_units = write_run(out, args.shards, args.keys, args.unit_keys, args.unfinished)
        print(f"resume: {args.shards:,} shards x {args.keys:,} keys = {args.shards * args.keys:,} "
              f"keys, {n_units:,} units ({args.unfinished} unfinished); written in "
              f"{time.perf_counter() - t:.1f} s")
        for variant in ("before", "after", "task"):
            print(f"  {variant:6s} {child(out, variant)}", flush=True)


def ids_of(n: int) -> np.ndarray:
    """n distinct arXiv-like ids ("2101.0000012"), as the fixed-width bytes finalize stores."""
    digits = (np.arange(n)[:, None] // 10 ** np.arange(6, -1, -1)) % 10 + ord("0")
    body = np.concatenate([np.frombuffer(b"2101.", np.uint8)[None, :].repeat(n, 0),
                           digits.astype(np.uint8)], axis=1)
    return np.ascontiguousarray(body).view("S12").ravel()


def write_previous(path: Path, ids: np.ndarray, t_hashes: np.ndarray, dim: int,
                   id_hash_data: np.ndarray | None) -> dict:
    import h5py

    from ray_job.read.previous import ID_HASHES
    from ray_job.rundir.job import COMPAT_ATTRS

    attrs = {k: "synthetic" for k in COMPAT_ATTRS}
    with h5py.File(path, "w") as h5:
        h5["ids"] = ids
        h5["text_hashes"] = t_hashes
        h5.create_dataset("embeddings", (len(ids), dim), dtype="f4")   # allocated, not written
        if id_hash_data is not None:
            h5[ID_HASHES] = id_hash_data
        h5.attrs.update(attrs)
        h5.attrs["count"] = len(ids)
    return attrs


def old_load_previous(path: Path):
    """load_previous as it was: ids read, hashed one Python call per id, argsorted."""
    import h5py

    from ray_job.read.previous import Previous, text_hash

    with h5py.File(path, "r") as h5:
        ids, t_hashes = h5["ids"][:], h5["text_hashes"][:]
    hashes = np.fromiter((text_hash(i.decode() if isinstance(i, bytes) else i) for i in ids),
                         dtype=np.uint64, count=len(ids))
    order = np.argsort(hashes, kind="stable")
    return Previous(str(path), hashes[order], t_hashes[order], order.astype(np.int64), len(ids))


def bench_pin(path: Path, previous) -> None:
    """The pin of a --previous: its content fingerprint alone (part of load_previous above),
    and finalize's check of it (verify_pin: the fingerprint taken again from the file)."""
    import h5py

    from ray_job.read.previous import content_fingerprint, lookup_hashes, verify_pin

    with h5py.File(path, "r") as h5:
        hashes, t_hashes = lookup_hashes(h5)
        _, fp_s = timed(content_fingerprint, h5, hashes, t_hashes)
    _, verify_s = timed(verify_pin, path, previous.pin, "bench")
    print(f"  pin: content fingerprint {fp_s:.2f} s (in load_previous)   verify_pin at "
          f"finalize {verify_s:.2f} s")


def timed(fn, *a):
    t = time.perf_counter()
    result = fn(*a)
    return result, time.perf_counter() - t


def bench_previous(args) -> None:
    from ray_job.read.previous import id_hashes, load_previous, text_hash

    n = args.previous_rows
    rng = np.random.default_rng(0)
    ids = ids_of(n)
    t_hashes = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
    with tempfile.TemporaryDirectory() as tmp:
        plain, cached = Path(tmp) / "plain.h5", Path(tmp) / "cached.h5"
        attrs = write_previous(plain, ids, t_hashes, args.dim, None)
        stored, hash_s = timed(id_hashes, ids)
        write_previous(cached, ids, t_hashes, args.dim, stored)
        print(f"--previous: {n:,} rows, dim {args.dim}; id_hashes for finalize to store: "
              f"{hash_s:.2f} s")
        part = ids[:args.hash_rows]
        loop_s, map_s = [], []
        for _ in range(3):                                # interleaved, best of 3
            loop_s.append(timed(lambda: np.fromiter((text_hash(i.decode()) for i in part),
                                                    dtype=np.uint64, count=len(part)))[1])
            map_s.append(timed(id_hashes, part)[1])
        print(f"  hashing {len(part):,} ids (best of 3)  before (loop) {min(loop_s):.2f} s   "
              f"after (map) {min(map_s):.2f} s")
        old, old_s = timed(old_load_previous, plain)
        new, new_s = timed(load_previous, str(plain), attrs)
        fast, fast_s = timed(load_previous, str(cached), attrs)
        assert np.array_equal(old.id_hash, new.id_hash) and np.array_equal(old.row, fast.row)
        print(f"  load_previous  before {old_s:.2f} s   after {new_s:.2f} s   "
              f"with stored id_hashes {fast_s:.2f} s   "
              f"(lookup {new.id_hash.nbytes * 3 / 2**20:.0f} MiB, 24 B/row)")
        bench_pin(cached, fast)
        # rows of a unit: half reused, a quarter changed, a quarter new
        m = min(args.classify_rows, n)
        pick = rng.choice(n, m, replace=False)
        row_ids = [i.decode() for i in ids[pick]]
        row_t = t_hashes[pick].copy()
        row_t[m // 2: 3 * m // 4] += np.uint64(1)
        row_ids[3 * m // 4:] = [f"new.{i}" for i in range(m - 3 * m // 4)]
        row_t_list = row_t.tolist()
        per_row, per_row_s = timed(lambda: [new.classify(i, h)
                                            for i, h in zip(row_ids, row_t_list, strict=True)])
        (status, old_row), vec_s = timed(lambda: new.classify_many(id_hashes(row_ids), row_t))
        names = ("new", "changed", "reused")
        assert [(names[s], r) for s, r in zip(status.tolist(), old_row.tolist(),
                                              strict=True)] == per_row
        print(f"  classify {m:,} rows  before (per row) {per_row_s:.3f} s   after (one pass) "
              f"{vec_s:.3f} s   x{per_row_s / max(vec_s, 1e-9):.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=500)
    ap.add_argument("--keys", type=int, default=20_000, help="keys per shard")
    ap.add_argument("--unit-keys", type=int, default=50_000, help="keys per read unit")
    ap.add_argument("--unfinished", type=int, default=2, help="units left to read")
    ap.add_argument("--previous-rows", type=int, default=1_000_000)
    ap.add_argument("--classify-rows", type=int, default=100_000)
    ap.add_argument("--hash-rows", type=int, default=1_000_000, help="ids hashed both ways")
    ap.add_argument("--dim", type=int, default=8)
    args = ap.parse_args()
    if args.shards:
        bench_resume(args)
    if args.previous_rows:
        bench_previous(args)


if __name__ == "__main__":
    main()
