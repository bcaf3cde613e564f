"""Credentials inside URLs never reach job.json, report.json, the dataset card or a message;
the real URL is still what is read."""
from __future__ import annotations

import json

import pytest

from ray_job.config import JobConfig
from ray_job.redact import redact_config, redact_text, redact_url

S3_PRESIGNED = ("https://bucket.s3.amazonaws.com/papers/a.jsonl?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                "&X-Amz-Credential=AKIAEXAMPLE%2F20250101%2Fus-east-1%2Fs3%2Faws4_request"
                "&X-Amz-Date=20250101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
                "&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE&X-Amz-Signature=0123abcdef")
SECRETS = ("hunter2", "AKIAEXAMPLE", "FwoGZXIvYXdzEXAMPLE", "0123abcdef", "s3cr3t", "tok123")


@pytest.mark.parametrize("url, expected", [
    ("https://alice:hunter2@host.org/x.jsonl", "https://***@host.org/x.jsonl"),
    ("https://alice@host.org/x.jsonl", "https://***@host.org/x.jsonl"),
    ("https://a:p@ss@host.org/x.jsonl", "https://***@host.org/x.jsonl"),
    ("https://acct.blob.core.windows.net/c/a.jsonl?sv=2022-11-02&se=2025&sp=r&sig=s3cr3t",
     "https://acct.blob.core.windows.net/c/a.jsonl?sv=2022-11-02&se=2025&sp=r&sig=***"),
    ("https://host/a.jsonl?token=tok123&v=2", "https://host/a.jsonl?token=***&v=2"),
    ("https://host/a.jsonl?X-Goog-Signature=s3cr3t", "https://host/a.jsonl?X-Goog-Signature=***"),
    ("https://host/a.jsonl#access_token=tok123", "https://host/a.jsonl#access_token=***"),
    ("simplecache::https://u:hunter2@host/a.jsonl", "simplecache::https://***@host/a.jsonl"),
    ("s3://bucket/year=2024/key=abc/a.parquet", "s3://bucket/year=2024/key=abc/a.parquet"),
    ("/data/papers/a.jsonl", "/data/papers/a.jsonl"),
    ("hf://datasets/me/papers/a.jsonl", "hf://datasets/me/papers/a.jsonl"),
])
def test_redact_url(url, expected):
    assert redact_url(url) == expected
    assert redact_url(expected) == expected                  # idempotent


def test_a_presigned_s3_url_keeps_everything_but_its_secrets():
    red = redact_url(S3_PRESIGNED)
    assert not any(s in red for s in SECRETS)
    assert "X-Amz-Credential=***" in red and "X-Amz-Signature=***" in red
    assert "X-Amz-Date=20250101T000000Z" in red and red.startswith("https://bucket.s3")


def test_redact_text_masks_urls_and_secret_parameters_in_a_message():
    msg = (f"cannot read {S3_PRESIGNED}: 403 Forbidden (url=URL('https://u:hunter2@h/x?sig=s3cr3t')"
           f", password=hunter2)")
    red = redact_text(msg)
    assert not any(s in red for s in SECRETS)
    assert red.startswith("cannot read https://bucket.s3.amazonaws.com/papers/a.jsonl?")
    assert "403 Forbidden" in red


def test_redact_config_redacts_the_url_fields_only():
    cfg = JobConfig.of(inputs=(S3_PRESIGNED, "/data/b.jsonl"), upload="https://u:hunter2@h/dest",
                       previous="https://h/old.h5?token=tok123", output="out")
    data = redact_config(cfg.to_dict())
    assert not any(s in json.dumps(data) for s in SECRETS)
    assert data["spec"]["inputs"][1] == "/data/b.jsonl"
    assert cfg.to_dict()["spec"]["inputs"][0] == S3_PRESIGNED     # the config is not changed
    assert JobConfig.from_dict(data).config_hash() == cfg.config_hash()


def test_the_config_hash_ignores_secrets_so_a_rotated_presigned_url_resumes():
    rotated = S3_PRESIGNED.replace("0123abcdef", "fedcba3210")
    assert JobConfig.of(inputs=(S3_PRESIGNED,)).config_hash() == \
        JobConfig.of(inputs=(rotated,)).config_hash()
    assert JobConfig.of(inputs=("https://h/a.jsonl?v=1",)).config_hash() != \
        JobConfig.of(inputs=("https://h/a.jsonl?v=2",)).config_hash()


def test_the_config_hash_of_a_url_without_secrets_is_unchanged():
    import dataclasses
    import hashlib

    from ray_job.config import HASHED_WHEN_SET, NOT_HASHED

    spec = JobConfig.of(inputs=("/data/a.jsonl", "s3://b/c.parquet")).spec
    hashed = {k: v for k, v in dataclasses.asdict(spec).items()
              if k not in HASHED_WHEN_SET + NOT_HASHED}       # unset: as before they existed
    blob = json.dumps(hashed, sort_keys=True, default=list).encode()
    assert spec.config_hash() == hashlib.sha256(blob).hexdigest()[:16]


def test_job_json_holds_no_secret(tmp_path):
    from ray_job.rundir.job import JobRecord, ModelInfo

    info = ModelInfo("m", "/models/m", "sentence-transformers", "/models/m", 128, "[SEP]", 0,
                     8, "mean", True)
    cfg = JobConfig.of(inputs=(S3_PRESIGNED,), upload="s3://b/x?token=tok123",
                       previous="https://u:hunter2@host/old", output=str(tmp_path))
    text = JobRecord.new(cfg, info, {"weights": "sha256:x"}, "cpu", "fp32").to_json()
    assert not any(s in text for s in SECRETS)
    record = JobRecord.from_json(text, "here")
    assert record.spec.inputs[0].count("***") and record.options.previous.count("***")
    assert record.config_hash == cfg.config_hash()        # the hash is of the redacted inputs


def test_remote_file_errors_name_the_url_without_its_secrets():
    from ray_job.errors import UserError
    from ray_job.storage.remote_files import user_errors

    with pytest.raises(UserError) as err, user_errors(S3_PRESIGNED):
        raise PermissionError(f"403 for url {S3_PRESIGNED}")
    assert "X-Amz-Signature=***" in str(err.value)
    assert not any(s in str(err.value) for s in SECRETS)


def test_the_cli_prints_errors_without_secrets(capsys, monkeypatch):
    from ray_job import cli
    from ray_job.errors import UserError

    def failing(args):
        raise UserError("input not found: https://u:hunter2@host/a.jsonl?sig=s3cr3t")

    monkeypatch.setitem(cli.COMMANDS, "status", failing)
    assert cli.main(["status", "somewhere"]) == 2
    err = capsys.readouterr().err
    assert "https://***@host/a.jsonl?sig=***" in err and "hunter2" not in err


def test_rejects_name_their_source_without_its_secrets_while_the_real_url_is_read(tmp_path):
    from ray_job.read.inputs import plan_units, resolve_inputs
    from ray_job.read.sources import rows_from_unit
    from ray_job.read.text import TextTemplate

    # a local file whose name holds a query string: file:// reads it by its real name
    (tmp_path / "in.jsonl?sig=s3cr3t").write_text('{"id": "a", "title": "t", "abstract": "x"}\n'
                                                  '{broken\n')
    [unit] = plan_units(resolve_inputs([f"file://{tmp_path}/in.jsonl?sig=s3cr3t"]), 1 << 20, None)
    rows = rows_from_unit(unit, TextTemplate("{title}{sep}{abstract}"), "id")
    assert rows.table.column("id").to_pylist() == ["a"]
    [reject] = rows.rejects
    assert reject["source"].endswith("in.jsonl?sig=***:43") and "s3cr3t" not in json.dumps(reject)
