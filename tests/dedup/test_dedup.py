"""ray-embed dedup on synthetic runs: planted exact and near duplicates found with the
earliest paper kept, nothing below the threshold, a collapsed run in bounded time, the
index's lists and the run's own clusters agreeing, the command line and its refusals."""
from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from dedup.synthetic import clustered, plant, write_run

from ray_job.cli import main
from ray_job.dedup.build import KEEP_RULE, build_dedup
from ray_job.outcome import EXIT_REFUSED
from ray_job.rundir.rundir import RunDir
from ray_job.search import ann
from ray_job.search.index import build_index


def pairs(root) -> list[dict]:
    return pq.read_table(root / "dedup" / "pairs.parquet").to_pylist()


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    emb = clustered(3000, 32)
    planted = plant(emb, 45)
    return write_run(tmp_path_factory.mktemp("dedup") / "run", emb), emb, planted


def test_planted_duplicates_are_found_and_the_earliest_paper_kept(planted_run):
    root, emb, planted = planted_run
    info = build_dedup(root, 0.95)
    found = pairs(root)
    assert info["rebuilt"] and info["pairs"] == len(found) == info["dropped"]
    by_row = {p["row"]: p for p in found}
    exact = [c for n, c in enumerate(planted) if n % 3 == 0]     # plant() cycles 1.0 first
    assert all(by_row[c]["duplicate_of_row"] == planted[c] for c in exact)
    recall = sum(by_row.get(c, {}).get("duplicate_of_row") == o for c, o in planted.items())
    assert recall / len(planted) >= 0.85
    for p in found:
        assert p["cluster"] == p["duplicate_of_row"] < p["row"]
        assert p["id"] == f"p{p['row']:06d}" and p["title"] == f"Paper {p['row']}"
        assert p["duplicate_of_title"] == f"Paper {p['duplicate_of_row']}"
        exact_cos = float(emb[p["row"]] @ emb[p["duplicate_of_row"]])
        assert exact_cos >= 0.95 and p["cosine"] == pytest.approx(exact_cos, abs=1e-5)
    record = json.loads((root / "dedup" / "dedup.json").read_text())
    assert record["keep"] == KEEP_RULE and record["method"]["clusters"] == "own k-means"
    assert not build_dedup(root, 0.95)["rebuilt"]                  # current: not made again
    assert build_dedup(root, 0.99)["rebuilt"]                      # another threshold


def test_a_collapsed_run_is_one_component_in_bounded_time(tmp_path):
    emb = np.tile(clustered(1, 16), (20_000, 1))
    root = write_run(tmp_path / "run", emb)
    started = time.monotonic()
    info = build_dedup(root, 0.95)
    assert time.monotonic() - started < 30
    assert (info["components"], info["dropped"]) == (1, 19_999)
    assert {p["cluster"] for p in pairs(root)} == {0}


def test_the_index_lists_and_own_clusters_agree(tmp_path):
    emb = clustered(6000, 32, seed=3)
    planted = plant(emb, 60, seed=4)
    root = write_run(tmp_path / "run", emb)
    build_index(root)                                 # small: flat; made IVF below
    ann.save(ann.build(root / "embeddings.h5", ann.AnnSpec("IVF8_HNSW32,SQ8", 8, 4)),
             root / "index" / "ann.faiss")
    record = json.loads((root / "index" / "index.json").read_text())
    record.update(factory="IVF8_HNSW32,SQ8", nlist=8, nprobe=4)
    (root / "index" / "index.json").write_text(json.dumps(record))
    by_index = build_dedup(root, 0.95)
    assert by_index["method"]["clusters"] == "index lists"
    from_index = {(p["row"], p["duplicate_of_row"]) for p in pairs(root)}
    shutil.rmtree(root / "index")
    own = build_dedup(root, 0.95, force=True)
    assert own["method"]["clusters"] == "own k-means"
    from_own = {(p["row"], p["duplicate_of_row"]) for p in pairs(root)}
    truth = set(planted.items())
    assert len(from_index & truth) >= 0.85 * len(truth)
    assert len(from_own & truth) >= 0.85 * len(truth)
    assert len(from_index ^ from_own) <= 0.1 * len(truth)


def test_the_command_prints_the_summary_and_records_it(planted_run, capsys):
    root = planted_run[0]
    assert main(["dedup", str(root), "--threshold", "0.96"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("dedup: 3,000 papers,") and KEEP_RULE in out[0]
    assert 1 <= len(out) - 1 <= 10 and "kept p" in out[2]
    near = RunDir.at(root).load_report()["near_duplicates"]
    assert near["threshold"] == 0.96 and near["dropped"] == near["pairs"] > 0
    assert main(["report", str(root)]) == 0
    shown = capsys.readouterr().out
    assert f"near-duplicates at cosine >= 0.96: {near['pairs']:,} pairs" in shown


@pytest.mark.parametrize("threshold", ["0", "1.5", "-0.2"])
def test_a_threshold_outside_0_1_is_one_line(planted_run, capsys, threshold):
    assert main(["dedup", str(planted_run[0]), "--threshold", threshold]) == EXIT_REFUSED
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "(0, 1]" in err[0]


def test_a_run_not_finalized_is_refused_in_one_line(tmp_path, capsys):
    root = write_run(tmp_path / "run", clustered(50, 8), report=False)
    assert main(["dedup", str(root)]) == EXIT_REFUSED
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not finalized" in err[0]
    assert not (root / "dedup").exists()
