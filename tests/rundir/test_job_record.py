"""job.json through JobRecord: release 0.1.0's records load (tests/data/release-0.1.0), a
record round-trips, and what the rest of the job takes from it (the attributes of
embeddings.h5, what --previous compares, a replica's slice, status and the card) comes from it
without a JobConfig being built or validated again."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import pytest

from ray_job.cli import main
from ray_job.config import JobConfig
from ray_job.errors import DataError
from ray_job.publish.upload import dataset_card
from ray_job.rundir.job import COMPAT_ATTRS, COMPAT_DEFAULTS, FORMAT, JobRecord, ModelInfo
from ray_job.rundir.rundir import RunDir
from ray_job.rundir.status import run_status

RELEASE = Path(__file__).resolve().parents[1] / "data" / "release-0.1.0"
INFO = ModelInfo("m", "/models/m", "transformers", "/models/m", 128, "[SEP]", 0, 8, "cls", False)


def release_record(name: str = "finished") -> JobRecord:
    return RunDir.at(RELEASE / name).load_job()


def test_a_release_record_loads_typed_and_writes_the_attributes_that_release_wrote():
    job = release_record()
    assert (job.device, job.precision, job.model.dim, job.model.normalized) == (
        "cpu", "fp32", 384, True)
    assert (job.spec.inputs == ("s3://ray-embed-fixture/papers-20.jsonl",)
            and job.options.shard_rows == 4)
    assert job.identity["weights"].startswith("sha256:") and job.revision is None
    with h5py.File(RELEASE / "finished" / "embeddings.h5") as h5:
        written = {k: h5.attrs[k] for k in h5.attrs if k not in ("count", "devices")}
    made = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in job.h5_attributes().items()}
    assert made == written
    assert tuple(job.compat_attrs()) == COMPAT_ATTRS
    assert set(COMPAT_ATTRS) - set(COMPAT_DEFAULTS) < set(made)     # a default left out
    assert release_record("interrupted").config_hash == job.config_hash


def test_a_record_round_trips_and_says_its_format(tmp_path):
    cfg = JobConfig.of(inputs=(str(tmp_path / "a.jsonl"),), output=str(tmp_path), limit=5,
                       exports=("parquet",), url_template="arxiv")
    job = JobRecord.new(cfg, INFO, {"weights": "commit:abc"}, "cuda", "fp16")
    text = job.to_json()
    assert json.loads(text)["format"] == FORMAT
    assert JobRecord.from_json(text, "here") == job
    assert job.revision == "abc" and job.h5_attributes()["url_template"] == "arxiv"


def test_a_release_record_without_device_and_precision_loads_with_none():
    """Release 0.1.0 wrote them in a second write: a run that stopped before it has none."""
    data = json.loads((RELEASE / "interrupted" / "job.json").read_text())
    del data["device"], data["precision"]
    job = JobRecord.from_json(json.dumps(data), "old")
    assert (job.device, job.precision) == (None, None) and job.model.name.endswith("MiniLM-L6-v2")
    with pytest.raises(DataError, match="old/job.json is not a job record"):    # format 2: needed
        JobRecord.from_json(json.dumps({**data, "format": 2}), "old")


@pytest.mark.parametrize("text, says", [
    ('{"format": 4}', "format 4, newer than this ray-embed reads"),
    ("{not json", "is not a job record"),
    ('{"config": {"spec": {"colour": "red"}, "options": {}}, "config_hash": "h", '
     '"model": {"identity": {}}}', "unknown OutputSpec field"),
])
def test_a_job_json_that_is_not_a_record_is_one_line(tmp_path, capsys, text, says):
    (tmp_path / "job.json").write_text(text)
    assert main(["status", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_replica_gets_its_slice_with_no_config_built_or_query_parsed(tmp_path, monkeypatch):
    from tiny_models import tiny_bert

    from ray_job.encode.encoder import Encoder

    bert = str(tiny_bert(tmp_path / "bert"))
    cfg = JobConfig.of(inputs=("papers.db",), id_field="corpusid", model=bert, pooling="mean",
                       query="SELECT * FROM papers", max_batch_tokens=777)
    info = ModelInfo(bert, bert, "transformers", bert, 64, "[SEP]", 0, 32, "mean", False)
    text = JobRecord.new(cfg, info, {"weights": "sha256:x"}, "cpu", "fp32").to_json()

    def refused(*args, **kwargs):
        raise AssertionError("a replica must not build or validate a JobConfig")

    monkeypatch.setattr(JobConfig, "__post_init__", refused)
    monkeypatch.setattr("ray_job.sql_query.check_query", refused)
    replica = JobRecord.from_json(text, "here").replica()
    assert not {"inputs", "query", "table", "text"} & set(vars(replica))
    assert (replica.device, replica.precision, replica.max_batch_tokens) == ("cpu", "fp32", 777)
    enc = Encoder(replica)
    assert (enc.device, enc.precision, enc.max_batch_tokens) == ("cpu", "fp32", 777)


def test_status_and_the_card_show_the_record(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(RELEASE / "finished", run)
    same, other = tmp_path / "same.yaml", tmp_path / "other.yaml"
    same.write_text("precision: fp32\nblock_bytes: 8000\n")   # run options do not count
    other.write_text("precision: fp32\ntext: '{abstract}'\n")
    status = run_status(run, str(same))
    assert status["config_matches"] is True and status["rows_done"] == 18
    assert (status["precision"], status["device"], status["finalized"]) == ("fp32", "cpu", True)
    assert run_status(run, str(other))["config_matches"] is False
    card = dataset_card(RunDir.at(run))
    assert "| count | 17 |" in card and "| precision | fp32 |" in card and "| dim | 384 |" in card
    assert "| text template | `{title}{sep}{abstract}` |" in card


def test_only_a_finished_run_is_published(tmp_path):
    """The card takes what finalize wrote from report.json (written last): a run whose
    embeddings.h5 is there but not its report (finalize stopped in between) is refused."""
    from ray_job.errors import UserError
    from ray_job.publish.upload import upload

    run = tmp_path / "run"
    shutil.copytree(RELEASE / "finished", run)
    (run / "report.json").unlink()
    with pytest.raises(UserError, match="is not finished .no report.json yet."):
        upload(str(run), (tmp_path / "dest").as_uri())
    assert not (tmp_path / "dest").exists() and not (run / "README.md").exists()
