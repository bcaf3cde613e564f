"""The storage fault injector (tests/faultkit) and the door's errors (storage/files.py):
schedules are deterministic, an injected fault takes the path of a real one, every storage
failure is one StorageError naming the file, and object-store calls have bounded timeouts."""
from __future__ import annotations

import errno
import json
import pickle
import socket
import threading
import time
from pathlib import Path

import pytest
from faultkit import FaultPlan, Injector, StorageFault, StorageFaults, injected, switch_env

from ray_job import hooks
from ray_job.errors import ConfigError
from ray_job.storage import timeouts
from ray_job.storage.failures import StorageError
from ray_job.storage.files import files_for
from ray_job.storage.store import Store


def plan(*rules: StorageFault, state_dir=None) -> StorageFaults:
    return StorageFaults(tuple(rules), str(state_dir) if state_dir else None)


def fired(injector: Injector, calls: list[tuple[str, str, str]]) -> list[bool]:
    out = []
    for kind, op, path in calls:
        try:
            injector.before(kind, op, path)
            out.append(False)
        except OSError:
            out.append(True)
    return out


def test_a_rule_matches_by_kind_or_method_and_path_then_after_and_times_count_its_calls():
    rule = StorageFault(op="write", path="*/shards/*", after=1, times=2)
    calls = [("write", "write", "/r/shards/a"), ("read", "read", "/r/shards/a"),
             ("write", "write", "/r/rejects/a"), ("write", "put", "/r/shards/b"),
             ("write", "write", "/r/shards/c"), ("write", "write", "/r/shards/d"),
             ("write", "write", "/r/shards/e")]
    assert fired(Injector(plan(rule)), calls) == [False, False, False, True, True, False, False]
    by_method = StorageFault(op="create_exclusive", path="*lease.json")
    assert fired(Injector(plan(by_method)), [("write", "write", "/r/lease.json"),
                                             ("write", "create_exclusive", "/r/lease.json")]) \
        == [False, True]


def test_a_probability_with_a_seed_fires_on_the_same_calls_whatever_the_interleaving():
    rule = StorageFault(op="*", path="*", probability=0.3, seed=7)
    paths = [f"/r/shards/part-{i}" for i in range(200)]
    forward = fired(Injector(plan(rule)), [("write", "write", p) for p in paths])
    backward = fired(Injector(plan(rule)), [("write", "write", p) for p in reversed(paths)])
    assert forward == backward[::-1]                         # per path, not per call order
    assert 40 <= sum(forward) <= 80                           # ~30% of 200
    other_seed = fired(Injector(plan(StorageFault(probability=0.3, seed=8))),
                       [("write", "write", p) for p in paths])
    assert other_seed != forward


def test_with_a_state_dir_calls_are_counted_across_injectors_as_across_processes(tmp_path):
    shared = plan(StorageFault(op="write", after=2, times=1), state_dir=tmp_path / "state")
    first, second = Injector(shared), Injector(shared)      # two workers of one run
    calls = [("write", "write", "/r/x")]
    assert fired(first, calls) + fired(second, calls) == [False, False]
    assert fired(first, calls) == [True]                     # the third call of the run
    assert fired(second, calls * 3) == [False] * 3           # once per run


def test_latency_sleeps_then_goes_on_and_a_stall_sleeps_then_times_out():
    slept = []
    injector = Injector(plan(StorageFault(op="read", fault="latency", seconds=2.5),
                             StorageFault(op="write", fault="stall", seconds=30)),
                        sleep=slept.append)
    injector.before("read", "read", "/r/x")
    with pytest.raises(TimeoutError) as stall:
        injector.before("write", "write", "/r/x")
    assert slept == [2.5, 30] and stall.value.errno == errno.ETIMEDOUT


def test_an_injected_fault_leaves_the_door_as_the_storage_error_a_real_one_is(tmp_path):
    store = Store.at(tmp_path / "run")
    with injected(plan(StorageFault(op="write", path="*/report.json", fault="enospc"))):
        store = Store.at(tmp_path / "run")
        store.write_text("job.json", "{}")                     # not matched: written
        with pytest.raises(StorageError) as full:
            store.write_text("report.json", "{}")
    assert full.value.errno == errno.ENOSPC and full.value.op == "write"
    assert str(full.value).startswith(f"cannot write {tmp_path / 'run' / 'report.json'}: "
                                      f"No space left on device")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["job.json"]   # no temp
    again = pickle.loads(pickle.dumps(full.value))            # crosses from a Ray worker
    assert (type(again), str(again), again.errno) == (StorageError, str(full.value), errno.ENOSPC)
    with pytest.raises(FileNotFoundError):                     # meaningful errors keep types
        store.read_text("missing.json")


def test_a_plan_is_on_while_its_switch_is_set_and_the_door_is_the_same_without_one(tmp_path):
    (tmp_path / "x").write_bytes(b"data")
    store = Store.at(tmp_path)
    assert hooks.installed() is None
    with injected(plan(StorageFault(op="read"))):
        assert hooks.installed() is not None and hooks.worker_env_vars()
        with pytest.raises(StorageError):
            store.read_bytes("x")
    assert hooks.installed() is None and not hooks.worker_env_vars()
    assert store.read_bytes("x") == b"data"


def test_a_fault_plan_is_json_and_bad_rules_are_refused(tmp_path):
    rules = [{"op": "write", "path": "*/shards/*", "fault": "enospc", "after": 1}]
    found = StorageFaults.from_json(json.dumps(rules))
    assert found == plan(StorageFault(op="write", path="*/shards/*", fault="enospc", after=1))
    whole = FaultPlan(2, str(tmp_path / "m"), found)
    written = switch_env(whole, tmp_path)[hooks.HOOKS_ENV].split(":", 1)[1]
    again = FaultPlan.load(written)
    assert (again.kill_encoder_after, again.marker, again.storage.rules) == (2, whole.marker,
                                                                             found.rules)
    assert again.storage.state_dir                      # counted across the run's processes
    for bad in ('[{"fault": "melt"}]', '[{"probability": 2}]', '[{"colour": 1}]', "{nope"):
        with pytest.raises(ConfigError, match="storage fault plan"):
            StorageFaults.from_json(bad)


def test_every_object_store_call_has_a_connect_and_read_timeout_and_bounded_retries():
    fs = files_for("s3://bucket/run")[0].fs
    config = fs.config_kwargs
    assert config["connect_timeout"] == timeouts.CONNECT_TIMEOUT_S
    assert config["read_timeout"] == timeouts.READ_TIMEOUT_S
    assert config["retries"] == {"total_max_attempts": timeouts.STORE_ATTEMPTS,
                                 "mode": "standard"}     # the first try included
    assert fs.retries == timeouts.S3FS_ATTEMPTS
    # the longest a stalled store can hold one call: every try times out, every backoff maxed
    backoff = sum(min(2 ** i, 20) for i in range(timeouts.STORE_ATTEMPTS - 1))
    worst = timeouts.S3FS_ATTEMPTS * (timeouts.STORE_ATTEMPTS * timeouts.READ_TIMEOUT_S + backoff)
    assert worst <= 240
    http = files_for("https://example.org/a.jsonl")[0].fs
    timeout = http.client_kwargs["timeout"]
    assert (timeout.sock_connect, timeout.sock_read) == (timeouts.CONNECT_TIMEOUT_S,
                                                         timeouts.READ_TIMEOUT_S)


def test_a_users_own_fsspec_configuration_wins_over_the_defaults(monkeypatch):
    from fsspec.config import conf

    monkeypatch.setitem(conf, "s3", {"config_kwargs": {"read_timeout": 300}})
    assert "config_kwargs" not in timeouts.storage_options("s3://bucket/x")
    assert timeouts.storage_options("/local/path") == {}
    assert set(timeouts.storage_options("simplecache::s3://bucket/x")) == {"s3"}


def use_endpoint(monkeypatch, endpoint: str) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")


@pytest.fixture
def stalled_endpoint():
    """A server that accepts connections and never answers (a stalled store)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_stalled_object_store_fails_the_call_in_bounded_time(stalled_endpoint, monkeypatch):
    """Before: botocore's 60 s read timeout, 5 tries, and s3fs's 5 more (~25 min a call).
    Here the same options, made short, show the timeouts reach botocore."""
    use_endpoint(monkeypatch, stalled_endpoint)
    monkeypatch.setattr(timeouts, "READ_TIMEOUT_S", 1)
    monkeypatch.setattr(timeouts, "STORE_ATTEMPTS", 2)
    monkeypatch.setattr(timeouts, "S3FS_ATTEMPTS", 1)
    store = Store.at(f"s3://stalled-{time.time_ns()}/run")
    started = time.monotonic()
    with pytest.raises(StorageError) as stalled:
        store.read_text("job.json")
    assert time.monotonic() - started < 20
    assert stalled.value.errno == errno.ETIMEDOUT
    assert str(stalled.value).startswith(f"cannot read {store.url}/job.json: ReadTimeoutError")


def test_a_store_that_refuses_connections_is_one_storage_error(monkeypatch):
    with socket.socket() as probe:                       # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    use_endpoint(monkeypatch, f"http://127.0.0.1:{port}")
    monkeypatch.setattr(timeouts, "STORE_ATTEMPTS", 2)
    store = Store.at(f"s3://down-{time.time_ns()}/run")
    with pytest.raises(StorageError) as down:
        store.write_text("job.json", "{}")
    assert down.value.errno == errno.ECONNREFUSED
    assert "Could not connect to the endpoint URL" in str(down.value)


def test_a_switched_on_plan_counts_calls_across_all_the_processes_of_the_run():
    """`after` and `times` are the run's: every process loads the plan the switch names, and
    the counts live in the state folder beside it (removed with the block)."""
    with injected(plan(StorageFault(op="write", after=1, times=1))):
        shipped = FaultPlan.load(hooks.worker_env_vars()[hooks.HOOKS_ENV].split(":", 1)[1])
        outcomes = []
        for _ in range(3):                          # three processes, one write each
            outcomes += fired(Injector(shipped.storage), [("write", "write", "/r/shards/x")])
    assert outcomes == [False, True, False]
    assert shipped.storage.state_dir and not Path(shipped.storage.state_dir).exists()


@pytest.mark.parametrize("columns", [None, ["key"]])
def test_a_shard_read_failing_at_any_read_is_a_storage_error_never_a_corrupt_shard(s3, columns):
    """Found by the property harness (test_properties_read, storage faults): pyarrow wraps
    what a Python file raises in a late read ("Failed to read message body, error IOError:
    ... Python exception"), and that OSError made a good shard a CorruptShard, to be moved
    to shards/corrupt/ (before: the 6th read of a read of only `key`). In a store: a local
    shard is memory-mapped, its reads are not Python's."""
    import numpy as np
    import pyarrow as pa

    from ray_job.encode.encoder import embedding_array
    from ray_job.rundir.rundir import RunDir

    table = pa.table({"key": np.arange(8, dtype=np.int64), "id": [f"p{i}" for i in range(8)],
                      "embedding": embedding_array(np.eye(8, 4, dtype=np.float32) + 1),
                      "text_hash": np.arange(1, 9, dtype=np.uint64),
                      "n_tokens": np.full(8, 3, np.int32), "n_computed": np.full(8, 3, np.int32)})
    url = f"s3://{s3.bucket}/run"
    name = RunDir.at(url).shards.write(table)
    for after in range(50):                   # the n-th read of the file fails, for every n
        with injected(plan(StorageFault(op="read", path="*/shards/part-*",
                                        fault="unreachable", after=after))):
            try:
                read = RunDir.at(url).shards.read(name, columns)
            except StorageError as failed:
                assert failed.errno == errno.ECONNREFUSED and name in str(failed)
                continue
        assert after > 2 and read.num_rows == 8          # every read done: the whole shard
        break
    else:
        pytest.fail("the shard never read")
