"""The encoder replica in-process (no Ray): device and precision are resolved once, on the
replica, from the driver's request, and every output batch records what ran."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from tiny_models import tiny_bert

from ray_job.config import JobConfig
from ray_job.config_checks import DEVICES, PRECISIONS
from ray_job.encode.encoder import RAN_COLUMNS, RAN_TYPE, Encoder
from ray_job.encode.model.precision import (
    RESOLVED,
    cpu_has_native_bf16,
    pick_precision,
    replica_choice,
    weights_dtype,
)
from ray_job.encode.tokenize import load_tokenizer, tokenize_texts
from ray_job.pipeline import replica_request
from ray_job.rundir.rejects import split_rejected
from ray_job.rundir.replica import ReplicaSpec
from ray_job.rundir.sink import write_shard_block
from ray_job.rundir.stage import RunContext

TEXTS = ["a short title", "a much longer abstract about sparse attention in transformers", "x"]


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return str(tiny_bert(tmp_path_factory.mktemp("enc") / "bert"))


def batch(source: str, texts: list[str] = TEXTS) -> pa.Table:
    ids = tokenize_texts(load_tokenizer(source), texts, 64)
    n = len(texts)
    return pa.table({"key": pa.array(np.arange(n, dtype=np.int64)),
                     "id": pa.array([f"p{i}" for i in range(n)]),
                     "text_hash": pa.array(np.arange(n, dtype=np.uint64)), "input_ids": ids})


def ran(out: pa.Table) -> dict:
    assert all(out.schema.field(name).type == RAN_TYPE for name in RAN_COLUMNS)
    values = {name: set(out.column(name).to_pylist()) for name in RAN_COLUMNS}
    assert all(len(v) == 1 for v in values.values())              # one value per batch
    return {name: v.pop() for name, v in values.items()}


def replica(cfg: JobConfig, source: str, device: str = "cpu", precision: str = "fp32"):
    return ReplicaSpec.of(cfg.spec, cfg.options, source, None, device, precision)


def encoder(source: str, device: str, precision: str) -> Encoder:
    cfg = JobConfig.of(model=source, pooling="mean")
    return Encoder(replica(cfg, source, device, precision))


@pytest.mark.parametrize("precision", ["fp32", pick_precision("auto", "cpu")])
def test_an_encoder_on_cpu_records_cpu_and_its_precision(bert, precision):
    enc = encoder(bert, "cpu", precision)
    out = enc(batch(bert))
    assert (enc.device, enc.precision) == ("cpu", precision)
    assert ran(out) == {"device": "cpu", "precision": precision}
    assert out.num_rows == len(TEXTS) and out.column("embedding").type.list_size == 32


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("asked, native, emulated", [("fp16", "bf16", "fp32"),
                                                      ("fp16-weights", "bf16-weights", "fp32")])
def test_a_cuda_request_on_a_cpu_only_node_runs_on_its_cpu_and_says_so(bert, asked, native,
                                                                        emulated):
    enc = encoder(bert, "cuda", asked)
    cpu_choice = native if cpu_has_native_bf16() else emulated     # bf16 or fp32, never fp16
    assert (enc.device, enc.precision) == ("cpu", cpu_choice)
    assert ran(enc(batch(bert))) == {"device": "cpu", "precision": cpu_choice}
    assert {p.dtype for p in enc.model.module.parameters()} == {weights_dtype(cpu_choice)}


def test_replica_choice_on_a_node_without_cuda():
    assert replica_choice("cuda", "fp16", False, native_bf16=True) == ("cpu", "bf16")
    assert replica_choice("cuda", "fp16", False, native_bf16=False) == ("cpu", "fp32")
    assert replica_choice("cuda", "fp32", False) == ("cpu", "fp32")
    assert replica_choice("cuda", "bf16", False) == ("cpu", "bf16")
    assert replica_choice("cpu", "fp16", False) == ("cpu", "fp16")   # asked for the CPU: as asked
    assert replica_choice("cuda", "fp16-weights", False, native_bf16=True) == ("cpu",
                                                                                "bf16-weights")
    assert replica_choice("cuda", "fp16-weights", False, native_bf16=False) == ("cpu", "fp32")
    assert replica_choice("cuda", "bf16-weights", False) == ("cpu", "bf16-weights")
    for unresolved in (("auto", "fp32"), ("cpu", "auto")):
        with pytest.raises(ValueError, match="resolved"):
            replica_choice(*unresolved, False)


@pytest.mark.parametrize("cluster", [{"CPU": 2}, {"CPU": 16, "GPU": 2}])
def test_the_driver_never_asks_a_replica_for_auto(cluster):
    for device in DEVICES:
        for precision in PRECISIONS:
            asked = replica_request(JobConfig.of(device=device, precision=precision), cluster)
            assert asked[0] in ("cpu", "cuda", "mps") and asked[1] in RESOLVED
            if device == "auto" and "GPU" in cluster:
                assert asked[0] == "cuda"
            if precision != "auto":
                assert asked[1] == precision


def written(encoded: pa.Table, run: Path) -> pa.Table:
    """What the shard sink makes of a replica's batch: its rejects written into `run`; the
    rows of its shard returned."""
    write_shard_block(encoded, RunContext(str(run)))
    return split_rejected(encoded)[0]


class OutOfMemoryError(RuntimeError):
    """Named like torch.cuda.OutOfMemoryError, which a CPU cannot raise."""


def test_a_row_the_model_fails_on_is_rejected_and_the_rest_of_its_batch_is_embedded(bert, tmp_path):
    import json

    cfg = JobConfig.of(model=bert, pooling="mean")
    clean = Encoder(replica(cfg, bert))(batch(bert))
    enc = Encoder(replica(cfg, bert), rejects=True)
    poison = int(batch(bert).column("input_ids")[1].values[2].as_py())   # a token of row 1 only
    real = enc.model.embed

    def embed(ids, mask):
        if (ids == poison).any():
            raise RuntimeError("index out of range in self")
        return real(ids, mask)

    enc.model.embed = embed
    out = written(enc(batch(bert)), tmp_path)
    assert out.column("id").to_pylist() == ["p0", "p2"]
    np.testing.assert_allclose(
        np.stack(out.column("embedding").to_numpy(zero_copy_only=False)),
        np.stack(clean.column("embedding").to_numpy(zero_copy_only=False))[[0, 2]], atol=1e-5)
    (reject,) = [json.loads(p.read_text()) for p in (tmp_path / "rejects").glob("encode-*.jsonl")]
    assert reject["reason"] == "model_error" and reject["id"] == "p1" and reject["key"] == 1


def test_out_of_memory_splits_the_batch_and_lowers_the_budget(bert, tmp_path):
    cfg = JobConfig.of(model=bert, pooling="mean", max_batch_tokens=4096)
    same = ["sparse attention in transformers"] * 4             # one micro-batch of 4 rows
    clean = Encoder(replica(cfg, bert))(batch(bert, same))
    enc = Encoder(replica(cfg, bert), rejects=True)
    real = enc.model.embed

    def embed(ids, mask):
        if ids.shape[0] > 1:
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(ids, mask)

    enc.model.embed = embed
    out = written(enc(batch(bert, same)), tmp_path)
    assert out.num_rows == 4 and not (tmp_path / "rejects").exists()
    np.testing.assert_allclose(
        np.stack(out.column("embedding").to_numpy(zero_copy_only=False)),
        np.stack(clean.column("embedding").to_numpy(zero_copy_only=False)), atol=1e-5)
    assert enc.max_batch_tokens < 4096


def test_after_an_out_of_memory_the_rest_of_the_call_is_cut_to_what_fit(bert, tmp_path):
    """Four micro-batches of 16 rows where 4 fit: the first is split (4 OOMs), the budget falls
    to the 4 rows x width that went through, and the other three are cut to that before they
    are tried (they were cut once, up front, and each ran into the OOM again)."""
    cfg = JobConfig.of(model=bert, pooling="mean", max_batch_tokens=4096, max_batch_rows=16)
    texts = ["sparse attention in transformers"] * 64
    clean = Encoder(replica(cfg, bert))(batch(bert, texts))
    enc = Encoder(replica(cfg, bert), rejects=True)
    real, ooms = enc.model.embed, []

    def embed(ids, mask):
        if ids.shape[0] > 4:
            ooms.append(ids.shape[0])
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(ids, mask)

    enc.model.embed = embed
    out = written(enc(batch(bert, texts)), tmp_path)
    width = int(out.column("n_tokens").to_numpy()[0])
    assert out.num_rows == 64 and not (tmp_path / "rejects").exists()
    assert ooms == [16, 16, 8, 8] and enc.max_batch_tokens == 4 * width
    np.testing.assert_allclose(
        np.stack(out.column("embedding").to_numpy(zero_copy_only=False)),
        np.stack(clean.column("embedding").to_numpy(zero_copy_only=False)), atol=1e-5)


def test_a_model_that_fails_on_every_row_fails_the_batch(bert, tmp_path):
    enc = Encoder(replica(JobConfig.of(model=bert, pooling="mean"), bert), rejects=True)

    def broken(ids, mask):
        raise RuntimeError("device lost")

    enc.model.embed = broken
    with pytest.raises(RuntimeError, match="device lost"):
        enc(batch(bert))
