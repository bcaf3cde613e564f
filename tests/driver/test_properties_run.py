"""Property-based, end to end on the session's Ray with a tiny random BERT: a generated corpus
(tests/corpus_strategies.py) and a generated sequence of operations on its run directory
(run, a driver killed at a random point, resume with other flags, --fresh, finalize again,
--previous runs on a changed corpus, chained), each finished state checked against the
oracle (final ids = the valid distinct ids in key order, every other row a reject with its
reason, reconciled) and the vectors against a direct encode (transformers, mean pooling) of
the oracle's texts. A user's files planted in the run directory must survive all of it.
Two examples by default; `-m slow` tries many more."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import run_ops
import torch
from corpus_oracle import expected
from corpus_strategies import GenFile, corpora, gen_files, json_line, records
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from ray_job.errors import DataError

SEP = "[SEP]"                 # the tiny BERT's separator token, as {sep} renders it
COMMON = dict(deadline=None, database=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from tiny_models import tiny_bert

    return str(tiny_bert(tmp_path_factory.mktemp("harness") / "bert"))


@pytest.fixture(scope="module")
def direct_encode(tiny_model):
    return make_direct_encode(tiny_model)


def make_direct_encode(tiny_model: str):
    """texts -> vectors, written here from transformers: mean pooling over the mask, fp32."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModel.from_pretrained(tiny_model)
    model.eval()

    def encode(texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, model.config.hidden_size), np.float32)
        batch = tokenizer(texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)).numpy()

    return encode


flags = st.builds(run_ops.Flags, shard_rows=st.sampled_from([2, 4, 8, 16]),
                  replicas=st.sampled_from([None, 1, 2]),
                  block_bytes=st.sampled_from([None, 4096, 8192]),
                  max_batch_tokens=st.sampled_from([None, 64, 4096]))
kill = st.tuples(st.just("kill"), flags, st.sampled_from(list(run_ops.kill_points())),
                 st.integers(0, 3))
operations = st.lists(st.one_of(
    kill, st.tuples(st.just("run"), flags), kill,
    st.tuples(st.just("replica_dies"), flags, st.integers(0, 2)),
    st.tuples(st.just("fresh"), flags),
    st.tuples(st.just("limit"), flags, st.integers(1, 30)),
    st.tuples(st.just("finalize")),
    st.tuples(st.just("previous"), flags, st.builds(
        run_ops.Changes, gen_files(0), st.none() | st.integers(0, 9),
        st.none() | st.integers(0, 50), st.none() | records())),
), min_size=1, max_size=4)


class Scenario:
    """One run directory (and its --previous successors) under a generated sequence."""

    def __init__(self, root: Path, files: list, model: str, encode):
        self.root, self.files, self.model, self.encode = root, files, model, encode
        self.generation = 0
        self.inputs = run_ops.copy_corpus(files, root / "in-0")
        self.out = root / "out-0"
        self.out.mkdir()
        run_ops.plant_user_files(self.out)
        self.exp = expected(files, SEP)
        self.finished = False              # the run directory holds a finished run

    def config(self, flags: run_ops.Flags, **more):
        return run_ops.job_config(self.inputs, self.out, self.model, flags, **more)

    def run(self, flags: run_ops.Flags, **more) -> None:
        from ray_job.pipeline import run

        self.exp = expected(self.files, SEP, more.get("limit"))
        if not self.exp.kept:
            with pytest.raises(DataError, match="nothing to finalize"):
                run(self.config(flags, **more))
            return
        self.check(run(self.config(flags, **more)))

    def kill(self, flags: run_ops.Flags, point: str, after: int) -> None:
        from ray_job.pipeline import run

        self.exp = expected(self.files, SEP)
        try:
            with run_ops.killed_at(point, after):
                run(self.config(flags))
        except run_ops.Killed:
            run_ops.leave_kill_debris(self.out)
            self.finished = False
        except DataError as exc:
            assert not self.exp.kept and "nothing to finalize" in str(exc)
        else:                                       # the run ended before that point
            self.check(None)

    def replica_dies(self, flags: run_ops.Flags, after: int) -> None:
        """An encoder replica exits hard on its (after+1)-th batch (tests/faultkit); the
        run goes on without it and ends as the oracle says."""
        from faultkit import FaultPlan, armed

        marker = self.root / f"replica-died-{len(list(self.root.glob('replica-died-*')))}"
        with armed(FaultPlan(kill_encoder_after=after, marker=str(marker))):
            self.finished = False
            self.run(flags)

    def limit(self, flags: run_ops.Flags, limit: int) -> None:
        """--limit N: the first N rows; a run that holds more is refused (nothing changed), a
        larger limit, or none, extends it."""
        import json

        from ray_job.errors import UserError
        from ray_job.pipeline import run

        plan = self.out / "plan.json"
        held = json.loads(plan.read_text())["limit"] if plan.exists() else 0
        if held is None or limit < held:
            with pytest.raises(UserError, match="would drop some"):
                with run_ops.unchanged(self.out):
                    run(self.config(flags, limit=limit))
            return
        self.finished = False
        self.run(flags, limit=limit)

    def fresh(self, flags: run_ops.Flags) -> None:
        """--fresh: discards the run; refused (nothing touched) while the folder holds the
        user's files and no run yet."""
        from ray_job.errors import UserError
        from ray_job.pipeline import run

        if (self.out / "job.json").exists():
            self.finished = False
            self.run(flags, fresh=True)
            return
        with pytest.raises(UserError, match="is not a run directory"):
            with run_ops.unchanged(self.out):
                run(self.config(flags, fresh=True))

    def finalize(self) -> None:
        from ray_job.finish import finalize_run
        from ray_job.rundir.rundir import RunDir

        if not self.finished:
            return                                  # a half-done run: nothing to finalize yet
        run_dir = RunDir.at(self.out)
        with run_dir.lease():
            report = finalize_run(run_dir)
        self.check(report)

    def previous(self, flags: run_ops.Flags, changes: run_ops.Changes) -> None:
        """A new snapshot into a new run directory, reusing this finished one (chained: the
        next --previous reuses that one)."""
        if not self.finished:
            self.run(run_ops.Flags())
        if not self.finished:
            return
        old = self.out
        self.generation += 1
        self.files = changes.apply(self.files)
        self.exp = expected(self.files, SEP)
        self.inputs = run_ops.copy_corpus(self.files, self.root / f"in-{self.generation}")
        self.out = self.root / f"out-{self.generation}"
        self.finished = False
        self.run(flags, previous=str(old))

    def check(self, report: dict | None) -> None:
        import json

        report = report or json.loads((self.out / "report.json").read_text())
        run_ops.check_run(self.out, self.exp, report, self.encode)
        self.finished = True


def play(files, ops, model: str, encode) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Scenario(Path(tmp), files, model, encode)
        for op in ops:
            event(f"op {op[0]}" + (f" at {op[2]}" if op[0] == "kill" else ""))
            getattr(scenario, op[0])(*op[1:])
        if not scenario.finished:
            scenario.run(run_ops.Flags())           # the same command again completes it
        if scenario.generation == 0:
            run_ops.assert_user_files_intact(scenario.out)


def odd_corpus() -> list[GenFile]:
    """Odd ids and texts in JSON lines, and a Parquet file with a damaged row group."""
    rows = [{"id": i, "title": f"paper {n}", "abstract": f"words about topic {n} " * 3}
            for n, i in enumerate(["p1", "p1\x00", 1, "1", " 1", "q", "r", "s", "t", "u"])]
    rows[6]["abstract"] = "control \x07\x1b characters and \u2028 separators"
    rows[7]["title"] = "a lone \ud800 surrogate"
    lines = [json_line(r, n % 2 == 0) for n, r in enumerate(rows)] + [b"[1, 2]", b"{bad"]
    parquet = [{"id": f"pq{n}", "title": f"table row {n}", "abstract": f"cells {n}"}
               for n in range(7)]
    return [GenFile("f00", "jsonl", ".jsonl", lines=lines),
            GenFile("f01", "parquet", ".parquet", values=parquet, group_rows=2, damaged_group=1)]


EXPLICIT = [("kill", run_ops.Flags(shard_rows=2, block_bytes=4096), "encode", 1),
            ("run", run_ops.Flags(shard_rows=4, replicas=1, block_bytes=8192)),
            ("fresh", run_ops.Flags(max_batch_tokens=64)), ("finalize",),
            ("previous", run_ops.Flags(), run_ops.Changes(
                GenFile("x", "jsonl", ".ndjson",
                        lines=[b'{"id": "new", "title": "t", "abstract": "a"}']),
                drop=None, change_line=0, appended={"id": "u", "title": "again", "abstract": "b"}))]


@settings(max_examples=1, derandomize=True, **COMMON)
@example(files=odd_corpus(), ops=EXPLICIT)
@given(files=corpora(max_files=2), ops=operations)
def test_generated_operations_end_as_the_oracle_says(local_ray, tiny_model, direct_encode,
                                                     files, ops):
    play(files, ops, tiny_model, direct_encode)


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
@settings(max_examples=60, **COMMON)
@given(files=corpora(), ops=operations)
def test_generated_operations_end_as_the_oracle_says_many(local_ray, tiny_model, direct_encode,
                                                          files, ops):
    play(files, ops, tiny_model, direct_encode)
