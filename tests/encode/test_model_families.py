"""Every model family as its authors call it, against sentence-transformers' own
`encode_document` / `encode_query`: tiny random models of each family's real architecture,
saved as their authors publish them (`tiny_families`), loaded through the code a user's model
goes through (the driver's description, the tokenize stage's recipe, the replica's Encoder),
at fp32 and at the reduced precision this CPU runs natively; on the real arXiv sample. Min
cosine per row >= 0.999, documents and queries."""
from __future__ import annotations

import functools
import json
import shutil
import warnings

import numpy as np
import pytest
from tiny_families import BGE_QUERY, GEMMA_PROMPTS, QWEN3_QUERY, STACKS, build

from ray_job.config import JobConfig
from ray_job.encode.encoder import Encoder
from ray_job.encode.model.precision import pick_precision
from ray_job.encode.tokenize import model_recipe, texts_encoder, token_array, tokenizer_recipe
from ray_job.errors import ConfigError, UserError
from ray_job.pipeline import describe_model, make_template
from ray_job.rundir.job import JobRecord

# the reduced precision this CPU runs natively (else fp32)
REDUCED = pick_precision("auto", "cpu")
PRECISIONS = sorted({"fp32", REDUCED})
N = 48
QUERIES = ["neutrino oscillations in matter", "Bounds on the chromatic number of graphs",
           "calorimeter calibration of the Higgs boson decay"]

# family -> (settings, the document prompt sentence-transformers is to be called with (by
# name), the query prompt by name, what {sep} is between title and abstract)
CASES = {
    "e5": ({}, "passage", "query", "[SEP]"),
    "bge": ({}, None, "query", "[SEP]"),
    "nomic": ({"prompt_name": "search_document", "query_prompt_name": "search_query"},
              "search_document", "search_query", "[SEP]"),
    "qwen3": ({}, None, "query", "\n"),
    "embeddinggemma": ({}, "document", "query", "\n"),
    "gte-modernbert": ({}, None, None, "[SEP]"),
}


@pytest.fixture(scope="module")
def texts(sample_records):
    return [" ".join(r["abstract"].split()) for r in sample_records[:N]]


@pytest.fixture(scope="module")
def models(tmp_path_factory, texts):
    """name -> the model's folder, built on first use."""
    root, built = tmp_path_factory.mktemp("families"), {}

    def get(name):
        if name not in built:
            built[name] = build(name, root / name, texts)
        return built[name]

    return get


def reference(folder, fresh: bool = False):
    """sentence-transformers' own model of `folder` (one per folder; `fresh`: a new one, to
    change)."""
    return (_load_reference if fresh else _reference)(str(folder))


def _load_reference(folder: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(folder, device="cpu")


_reference = functools.lru_cache(maxsize=None)(_load_reference)


def pipeline_embed(folder, texts, precision="fp32", side="document", records=None, **settings):
    """Texts embedded as the pipeline embeds them, minus Ray: the driver's model description
    and template, the tokenize stage's recipe, the replica's Encoder (`side`: the documents, or
    the queries as `search` embeds them). `records`: render these through the run's template
    instead of taking `texts`."""
    cfg = JobConfig.of(model=str(folder), precision=precision, **settings)
    info = describe_model(cfg, str(folder))
    if records is not None:
        texts = [make_template(cfg, info).render(r) for r in records]
    record = JobRecord.new(cfg, info, {"weights": "sha256:test"}, "cpu", precision)
    encoder = Encoder(record.replica() if side == "document" else record.query_replica())
    recipe = model_recipe(encoder.model.info)
    vectors, _ = encoder.embed_token_lists(token_array(texts_encoder(recipe)(texts)))
    return encoder.model.info, vectors


def min_cosine(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(1).min())


def check_close(got, want, precision):
    assert got.shape == want.shape
    assert min_cosine(got, want) >= 0.999
    if precision == "fp32":
        np.testing.assert_allclose(got, want, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), np.linalg.norm(want, axis=1),
                               atol=1e-3)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("family", CASES)
def test_each_family_embeds_papers_and_queries_as_its_authors_do(family, precision, models,
                                                                 sample_records):
    settings, document_name, query_name, sep = CASES[family]
    folder = models(family)
    papers = sample_records[:N]
    info, documents = pipeline_embed(folder, None, precision, records=papers, **settings)
    st = reference(folder)
    texts = [" ".join(p["title"].split()) + sep + " ".join(p["abstract"].split())
             for p in papers]
    by_name = {"prompt_name": document_name} if document_name else {}
    check_close(documents, st.encode_document(texts, **by_name), precision)
    assert info.sep_token == sep and info.prompt_name == document_name
    query_info, queries = pipeline_embed(folder, QUERIES, precision, side="query", **settings)
    by_name = {"prompt_name": query_name} if query_name else {}
    check_close(queries, st.encode_query(QUERIES, **by_name), precision)
    assert query_info.prompt == (st.prompts[query_name] if query_name else "")


def test_the_prompts_are_the_families_own(models):
    """The documents' and queries' prompts as each family's authors set them; ST 5.7's
    `encode_document` would give e5 none (it finds its own empty "document" prompt first)."""
    e5 = describe_model(JobConfig.of(model=str(models("e5"))), str(models("e5")))
    assert (e5.prompt, e5.query_prompt) == ("passage: ", "query: ")
    bge = describe_model(JobConfig.of(model=str(models("bge"))), str(models("bge")))
    assert (bge.prompt, bge.query_prompt) == ("", BGE_QUERY)
    qwen = describe_model(JobConfig.of(model=str(models("qwen3"))), str(models("qwen3")))
    assert (qwen.prompt, qwen.query_prompt, qwen.pooling) == ("", QWEN3_QUERY, "lasttoken")
    gemma = describe_model(JobConfig.of(model=str(models("embeddinggemma"))),
                           str(models("embeddinggemma")))
    assert (gemma.prompt, gemma.query_prompt) == (GEMMA_PROMPTS["document"],
                                                  GEMMA_PROMPTS["query"])


def test_a_model_whose_prompts_none_applies_says_so(models, capsys):
    folder = models("nomic")
    info = describe_model(JobConfig.of(model=str(folder)), str(folder))
    assert info.prompt == "" and info.query_prompt == ""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "clustering, search_document, search_query" in err
    assert "--prompt-name" in err
    describe_model(JobConfig.of(model=str(folder), prompt=""), str(folder))   # chosen: silent
    assert capsys.readouterr().err == ""


def test_a_prompt_is_applied_before_truncation_as_sentence_transformers_does(models, texts):
    """The prompt's tokens count toward the max length (64 here): long abstracts lose as many
    tokens at their end as the prompt has."""
    folder = models("e5")
    long_texts = [t for t in texts if len(t) > 600][:8]
    _, got = pipeline_embed(folder, long_texts)
    _, bare = pipeline_embed(folder, long_texts, prompt="")
    st = reference(folder)
    np.testing.assert_allclose(got, st.encode(long_texts), atol=2e-5)
    np.testing.assert_allclose(bare, st.encode(long_texts, prompt=""), atol=2e-5)
    assert np.abs(got - bare).max() > 1e-2
    recipe = tokenizer_recipe(str(folder), 64, prompt="passage: ")
    assert {len(ids) for ids in texts_encoder(recipe)(long_texts)} == {64}   # prompt inside


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("stack", STACKS)
def test_every_module_stack_matches_at_every_precision(stack, precision, models, texts):
    folder = models(stack)
    st = reference(folder)
    info, documents = pipeline_embed(folder, texts, precision)
    check_close(documents, st.encode_document(texts), precision)
    _, queries = pipeline_embed(folder, QUERIES, precision, side="query")
    check_close(queries, st.encode_query(QUERIES), precision)


def test_what_the_stacks_change_is_what_ray_embed_applies(models, texts):
    """Each stack's difference from the plain one shows: the library's answer without it is
    far from ray-embed's (so matching the library means applying it)."""
    st = reference(models("lowercased"))
    _, got = pipeline_embed(models("lowercased"), texts)
    assert min_cosine(got, st.encode_document([t.lower() for t in texts])) > 0.9999
    st = reference(models("instructor"), fresh=True)
    _, got = pipeline_embed(models("instructor"), texts)
    st.set_pooling_include_prompt(True)
    assert min_cosine(got, st.encode_document(texts)) < 0.999
    info, cut = pipeline_embed(models("matryoshka"), texts)
    assert (info.dim, info.normalized) == (16, False) and cut.shape == (N, 16)
    assert np.linalg.norm(cut, axis=1).max() < 0.99       # Normalize, then cut: as ST's encode
    _, unit = pipeline_embed(models("matryoshka"), texts, normalize=True)
    np.testing.assert_allclose(unit, cut / np.linalg.norm(cut, axis=1, keepdims=True), atol=1e-6)
    router = reference(models("router"))
    _, documents = pipeline_embed(models("router"), texts)
    assert min_cosine(documents, router.encode_query(texts, prompt="passage: ")) < 0.9


def test_truncate_dim_cuts_any_model_as_sentence_transformers_does(texts):
    from ray_job.encode.model.loading import bundled_model_path

    minilm = bundled_model_path()
    info, got = pipeline_embed(minilm, texts, truncate_dim=128)
    assert info.dim == 128 and not info.normalized
    np.testing.assert_allclose(got, reference(minilm).encode(texts, truncate_dim=128), atol=2e-5)
    with pytest.raises(UserError, match="between 1 and the model's dimension 384"):
        pipeline_embed(minilm, texts, truncate_dim=385)


def test_a_dense_head_keeps_unit_norms_at_reduced_precision(models, texts):
    """EmbeddingGemma's Dense -> Dense -> Normalize under bf16 autocast: the heads run in
    float32, so the vectors are unit length to float32's precision (finalize checks 1e-3)."""
    _, vectors = pipeline_embed(models("embeddinggemma"), texts, "bf16")
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    _, halved = pipeline_embed(models("embeddinggemma"), texts, "bf16-weights")
    np.testing.assert_allclose(np.linalg.norm(halved, axis=1), 1.0, atol=1e-5)
    assert min_cosine(halved, reference(models("embeddinggemma")).encode_document(texts)) > 0.999


# ---- flags that contradict the model are refused ---------------------------------------------

def test_pooling_on_a_sentence_transformers_model_is_refused_unless_the_backend_is_named(
        models, texts):
    folder = models("e5")
    with pytest.raises(UserError, match=r"--pooling mean contradicts model .* its own modules "
                                        r"\(Pooling\(mean\) -> Normalize\); drop --pooling, or "
                                        r"add --backend transformers"):
        pipeline_embed(folder, texts, pooling="mean")
    info, raw = pipeline_embed(folder, texts, pooling="mean", backend="transformers")
    assert info.backend == "transformers" and not info.normalized      # asked for by name
    assert np.linalg.norm(raw, axis=1).min() > 1.5


def test_cls_pooling_on_a_causal_decoder_is_refused(models, texts):
    folder = models("qwen3") / ".." / "hf"
    with pytest.raises(UserError, match="a causal decoder, takes a token that sees no other"):
        pipeline_embed(folder.resolve(), texts, pooling="cls", backend="transformers")
    info, last = pipeline_embed(folder.resolve(), texts, pooling="lasttoken",
                                backend="transformers")
    assert len({tuple(np.round(v, 5)) for v in last}) == len(texts)


def test_prompt_settings_that_cannot_hold_are_refused(models, texts):
    with pytest.raises(UserError, match=r"has no prompt named 'corpus' \(its prompts: "
                                        r"document, passage, query\)"):
        pipeline_embed(models("e5"), texts, prompt_name="corpus")
    with pytest.raises(ConfigError, match="prompt and prompt_name both"):
        JobConfig.of(prompt="x", prompt_name="query")
    from ray_job.encode.model.loading import bundled_model_path

    with pytest.raises(UserError, match=r"has no prompt named 'query' \(its prompts: none\); "
                                        r"give the text itself with --prompt"):
        pipeline_embed(bundled_model_path(), texts, prompt_name="query")


def test_a_changed_prompt_changes_the_config_hash_and_unset_new_settings_do_not():
    plain = JobConfig.of()
    assert plain.config_hash() == JobConfig.of(query_prompt="q: ").config_hash()
    hashes = {JobConfig.of(**s).config_hash() for s in (
        {}, {"prompt": ""}, {"prompt": "passage: "}, {"prompt_name": "passage"},
        {"truncate_dim": 128})}
    assert len(hashes) == 5


# ---- the whole job, on Ray -----------------------------------------------------------------------

def test_a_prompted_dense_model_runs_end_to_end_and_search_uses_its_query_prompt(
        models, ray_embed, sample_path, sample_records, tmp_path):
    """EmbeddingGemma's shape at the precision `auto` chooses: prompts, Dense heads, Normalize; the
    run finalizes (unit norms), records its prompts, and `search` embeds with the query
    prompt. A resume with another prompt, or with the model's prompt edited, is refused."""
    import h5py

    folder = shutil.copytree(models("embeddinggemma"), tmp_path / "gemma")
    out = tmp_path / "out"
    done = ray_embed("run", "--input", str(sample_path), "--output", str(out), "--model",
                     str(folder), "--limit", "40", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    st = reference(folder, fresh=True)
    papers = sample_records[:40]
    texts = [" ".join(p["title"].split()) + "\n" + " ".join(p["abstract"].split())
             for p in papers]
    with h5py.File(out / "embeddings.h5") as h5:
        vectors, attrs = h5["embeddings"][:], dict(h5.attrs)
    assert min_cosine(vectors, st.encode_document(texts)) >= 0.999
    record = json.loads((out / "job.json").read_text())
    assert attrs["prompt"] == GEMMA_PROMPTS["document"]
    assert attrs["precision"] == record["precision"] == record["precision_choice"]["precision"]
    job = record["model"]
    assert (job["prompt"], job["query_prompt"]) == (GEMMA_PROMPTS["document"],
                                                    GEMMA_PROMPTS["query"])
    found = ray_embed("search", str(out), QUERIES[0], "-k", "5", "--json", cwd=tmp_path)
    hits = json.loads(found.stdout)
    query = st.encode_query([QUERIES[0]])[0]
    scores = vectors @ query / np.linalg.norm(vectors, axis=1) / np.linalg.norm(query)
    assert hits[0]["id"] == papers[int(np.argmax(scores))]["id"]
    for hit in hits:
        row = [p["id"] for p in papers].index(hit["id"])
        assert hit["score"] == pytest.approx(scores[row], abs=5e-3)
    bare = ray_embed("search", str(out), QUERIES[0], "-k", "5", "--json", "--query-prompt", "",
                     cwd=tmp_path)
    assert json.loads(bare.stdout) != hits
    status = ray_embed("status", str(out), cwd=tmp_path).stdout
    assert "prompts        document 'title: none | text: ' (document); query " in status

    other = ray_embed("run", "--input", str(sample_path), "--output", str(out), "--model",
                      str(folder), "--limit", "40", "--prompt", "", cwd=tmp_path)
    assert other.returncode == 2 and "other settings (prompt: None -> '')" in other.stderr
    config = folder / "config_sentence_transformers.json"
    saved = json.loads(config.read_text())
    config.write_text(json.dumps({**saved, "prompts": {**saved["prompts"],
                                                       "document": "title: | text: "}}))
    edited = ray_embed("run", "--input", str(sample_path), "--output", str(out), "--model",
                       str(folder), "--limit", "40", cwd=tmp_path)
    assert edited.returncode == 2 and "now calls for other vectors" in edited.stderr
    assert "prompt: 'title: none | text: ' -> 'title: | text: '" in edited.stderr
