"""A model is its weights (or its Hub commit), not its name: a retrained ./my-model must not
pass for the one an earlier run used."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from tiny_models import tiny_adapter, tiny_bert

from ray_job.config import JobConfig
from ray_job.encode.model.identity import local_weights_digest, model_identity
from ray_job.errors import UserError
from ray_job.read.previous import load_previous
from ray_job.rundir.job import COMPAT_ATTRS, COMPAT_DEFAULTS, check_same_model, pinned_revision


def retrain(folder):
    from transformers import BertModel

    model = BertModel.from_pretrained(str(folder))
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    model.save_pretrained(folder)


def test_a_retrained_local_model_has_another_identity(tmp_path):
    folder = tiny_bert(tmp_path / "my-model")
    adapter = tiny_adapter(folder, tmp_path / "adapter")
    spec = JobConfig.of(model=str(folder), adapter=str(adapter)).spec
    first = model_identity(spec, str(folder))
    assert first["weights"].startswith("sha256:") and first["adapter"].startswith("sha256:")
    assert model_identity(spec, str(folder)) == first
    retrain(folder)
    second = model_identity(spec, str(folder))
    assert second["weights"] != first["weights"] and second["adapter"] == first["adapter"]
    assert pinned_revision(second) is None
    assert pinned_revision({"weights": "commit:abc123"}) == "abc123"
    with pytest.raises(UserError, match="model of out changed since it started"):
        check_same_model(first, second, "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no weight files"):
        local_weights_digest(tmp_path / "empty")


def test_previous_compares_the_model_identity_not_the_name(tmp_path):
    path = tmp_path / "embeddings.h5"
    attrs = {"model": "./my-model", "model_identity": json.dumps({"weights": "sha256:old"}),
             "adapter": "", "backend": "transformers", "pooling": "cls", "normalized": False,
             "precision": "fp32", "text_template": "{title}", "max_seq_length": 128,
             "dim": 4}
    assert set(attrs) | set(COMPAT_DEFAULTS) == set(COMPAT_ATTRS)   # no prompt: reads as none
    with h5py.File(path, "w") as h5:
        h5["ids"] = np.array([b"a"])
        h5["text_hashes"] = np.array([1], np.uint64)
        h5["embeddings"] = np.ones((1, 4), np.float32)
        h5.attrs.update(attrs)
    assert load_previous(str(path), attrs).count == 1
    new = {**attrs, "model_identity": json.dumps({"weights": "sha256:new"})}
    with pytest.raises(UserError, match="model_identity"):
        load_previous(str(path), new)
