"""Every way a command ends is one line and an exit code (outcome.py); a failure's full
traceback goes to a log file the line names (in the run directory, or the private scratch
folder when there is none), and neither the line nor the log holds a credential."""
from __future__ import annotations

import shutil
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from http_ranges import RangeFileHandler

from ray_job.errors import DataError, UserError
from ray_job.outcome import EXIT_DATA, EXIT_REFUSED, EXIT_STORAGE, EXIT_UNEXPECTED, outcome_of
from ray_job.storage.scratch import private_dir

SECRET_URL = "https://reader:hunter2@papers.example/a.jsonl?X-Amz-Signature=s3cr3tsig&x=1"
SECRETS = ("hunter2", "s3cr3tsig")


def logged(line: str) -> Path:
    return Path(line.rsplit("(full log: ", 1)[1].rstrip(")"))


def last_line(result) -> str:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result.stderr.strip().splitlines()[-1]


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_an_unexpected_error_is_one_line_exit_4_and_its_traceback_is_in_the_runs_log(
        ray_embed, finished_run, tmp_path, monkeypatch):
    """Before: the raw traceback on stderr, secrets and all, exit code 1."""
    import ray_job.finalize.merge as merge

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)

    def broken(*args, **kwargs):
        raise RuntimeError(f"could not merge, reading {SECRET_URL}")

    monkeypatch.setattr(merge, "_finalize", broken)
    result = ray_embed("finalize", str(run), cwd=tmp_path)
    assert result.returncode == EXIT_UNEXPECTED
    line = last_line(result)
    assert line.startswith("ray-embed: failed: unexpected RuntimeError: could not merge, "
                           "reading https://***@papers.example/a.jsonl?X-Amz-Signature=***&x=1")
    log = logged(line)
    assert log.parent == run / "logs" and log.name.startswith("driver-")
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "in broken" in text
    assert f"command: ray-embed finalize {run}" in text
    assert_no_secret(result.stderr, text)
    assert not (run / "lease.json").exists()


def test_without_a_run_directory_the_log_goes_to_the_private_scratch_folder(
        ray_embed, sample_path, tmp_path, monkeypatch):
    import ray_job.pipeline as pipeline

    def broken(*args, **kwargs):
        raise ValueError(f"no plan for {SECRET_URL}")

    monkeypatch.setattr(pipeline, "plan_job", broken)
    out = tmp_path / "not-yet"
    result = ray_embed("run", "--input", str(sample_path), "--output", str(out), cwd=tmp_path)
    assert result.returncode == EXIT_UNEXPECTED
    log = logged(last_line(result))
    assert log.parent == private_dir("logs") and oct(log.stat().st_mode & 0o777) == "0o600"
    assert "ValueError" in log.read_text()
    assert_no_secret(result.stderr, log.read_text())
    assert not out.exists()                                 # nothing made for a log


class FailingReads(RangeFileHandler):
    """Serves the driver's reads (from the head of the file: the manifest's fingerprint, the
    row estimate; the fingerprint of its last 64 KiB) and answers 500 to any other range: a
    read task's unit that starts inside the file."""

    def do_GET(self):
        size = (self.server.root / "papers.jsonl").stat().st_size
        first = int((self.headers.get("Range") or "bytes=0-").removeprefix("bytes=")
                    .partition("-")[0])
        if first not in (0, size - 64 * 1024):
            self.send_error(500)
            return
        super().do_GET()


def test_a_signed_url_whose_server_fails_under_a_task_leaks_into_no_line_and_no_log(
        ray_embed, local_ray, sample_path, tmp_path):
    """Before: a Ray task traceback printing the signed URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), FailingReads)
    server.root, server.requests = tmp_path, []
    shutil.copyfile(sample_path, tmp_path / "papers.jsonl")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = (f"http://reader:hunter2@127.0.0.1:{server.server_address[1]}/papers.jsonl"
           f"?X-Amz-Signature=s3cr3tsig")
    try:
        result = ray_embed("run", "--input", url, "--output", str(tmp_path / "out"),
                           cwd=tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == EXIT_STORAGE, result.stderr[-3000:]
    line = last_line(result)
    assert line.startswith("ray-embed: failed: cannot read http://***@127.0.0.1:"), line
    assert "papers.jsonl?X-Amz-Signature=***: ClientResponseError: 500" in line
    log = logged(line).read_text()
    assert "RayTaskError" in log                     # it failed in a read task
    assert_no_secret(result.stdout, result.stderr, log)
    session = Path(local_ray._private.worker._global_node.get_session_dir_path())
    leaks = [p for p in session.rglob("*") if p.is_file() and not p.is_socket()
             and any(s.encode() in p.read_bytes() for s in SECRETS)]
    assert leaks == []                               # Ray's logs of the failed task


@pytest.mark.parametrize("exc, code, starts", [
    (UserError("bad --limit"), EXIT_REFUSED, "ray-embed: error: bad --limit"),
    (DataError("shard x is corrupt"), EXIT_DATA, "ray-embed: failed: shard x is corrupt"),
    (OSError(5, "Input/output error"), EXIT_STORAGE,
     "ray-embed: failed: storage error (OSError: [Errno 5] Input/output error)"),
    (KeyError("x"), EXIT_UNEXPECTED, "ray-embed: failed: unexpected KeyError: 'x'"),
])
def test_each_kind_of_ending_has_its_exit_code(exc, code, starts):
    outcome = outcome_of(exc)
    assert outcome.code == code and outcome.line.startswith(starts)
    assert outcome.logged == (code != EXIT_REFUSED)
