"""The encoder replica in-process (no Ray): device and precision are resolved once, on the
replica, from the driver's request, and every output batch records what ran."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from ray_job.config import JobConfig
from ray_job.config_checks import DEVICES, PRECISIONS
from ray_job.encode.encoder import RAN_COLUMNS, RAN_TYPE, Encoder
from ray_job.encode.precision import pick_precision, replica_choice
from ray_job.encode.tokenize import load_tokenizer, tokenize_texts
from ray_job.pipeline import replica_request
from tiny_models import tiny_bert

TEXTS = ["a short title", "a much longer abstract about sparse attention in transformers", "x"]


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return str(tiny_bert(tmp_path_factory.mktemp("enc") / "bert"))


def batch(source: str) -> pa.Table:
    ids = tokenize_texts(load_tokenizer(source), TEXTS, 64)
    n = len(TEXTS)
    return pa.table({"key": pa.array(np.arange(n, dtype=np.int64)),
                     "id": pa.array([f"p{i}" for i in range(n)]),
                     "text_hash": pa.array(np.arange(n, dtype=np.uint64)), "input_ids": ids})


def ran(out: pa.Table) -> dict:
    assert all(out.schema.field(name).type == RAN_TYPE for name in RAN_COLUMNS)
    values = {name: set(out.column(name).to_pylist()) for name in RAN_COLUMNS}
    assert all(len(v) == 1 for v in values.values())              # one value per batch
    return {name: v.pop() for name, v in values.items()}


def encoder(source: str, device: str, precision: str) -> Encoder:
    cfg = JobConfig.of(model=source, pooling="mean")
    return Encoder(cfg.to_dict(), source, device=device, precision=precision)


@pytest.mark.parametrize("precision", ["fp32", pick_precision("auto", "cpu")])
def test_an_encoder_on_cpu_records_cpu_and_its_precision(bert, precision):
    enc = encoder(bert, "cpu", precision)
    out = enc(batch(bert))
    assert (enc.device, enc.precision) == ("cpu", precision)
    assert ran(out) == {"device": "cpu", "precision": precision}
    assert out.num_rows == len(TEXTS) and out.column("embedding").type.list_size == 32


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_cuda_request_on_a_cpu_only_node_runs_on_its_cpu_and_says_so(bert):
    enc = encoder(bert, "cuda", "fp16")
    cpu_choice = pick_precision("auto", "cpu")                     # bf16 or fp32, never fp16
    assert (enc.device, enc.precision) == ("cpu", cpu_choice)
    assert ran(enc(batch(bert))) == {"device": "cpu", "precision": cpu_choice}


def test_replica_choice_on_a_node_without_cuda():
    assert replica_choice("cuda", "fp16", False, native_bf16=True) == ("cpu", "bf16")
    assert replica_choice("cuda", "fp16", False, native_bf16=False) == ("cpu", "fp32")
    assert replica_choice("cuda", "fp32", False) == ("cpu", "fp32")
    assert replica_choice("cuda", "bf16", False) == ("cpu", "bf16")
    assert replica_choice("cpu", "fp16", False) == ("cpu", "fp16")   # asked for the CPU: as asked
    for unresolved in (("auto", "fp32"), ("cpu", "auto")):
        with pytest.raises(ValueError, match="resolved"):
            replica_choice(*unresolved, False)


@pytest.mark.parametrize("cluster", [{"CPU": 2}, {"CPU": 16, "GPU": 2}])
def test_the_driver_never_asks_a_replica_for_auto(cluster):
    for device in DEVICES:
        for precision in PRECISIONS:
            asked = replica_request(JobConfig.of(device=device, precision=precision), cluster)
            assert asked[0] in ("cpu", "cuda", "mps") and asked[1] in ("fp32", "fp16", "bf16")
            if device == "auto" and "GPU" in cluster:
                assert asked[0] == "cuda"
            if precision != "auto":
                assert asked[1] == precision
