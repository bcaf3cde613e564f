"""Which prompt goes before a document and before a query (encode/model/prompts.py), which route of
an asymmetric model each takes (st_format.route_for), and how the choice is recorded: pure
rules, no model."""
from __future__ import annotations

import json

import pytest

from ray_job.config import JobConfig, apply_preset
from ray_job.encode.model.prompts import Prompt, SavedPrompts, choose, prompt_token_count
from ray_job.encode.model.st_format import route_for
from ray_job.errors import UserError
from ray_job.rundir.job import JobRecord, ModelInfo

E5 = SavedPrompts({"query": "query: ", "passage": "passage: "}, None)


@pytest.mark.parametrize("saved, side, expected", [
    (E5, "document", Prompt("passage: ", "passage")),
    (E5, "query", Prompt("query: ", "query")),
    (SavedPrompts({"query": "q: ", "passage": "p: ", "document": "d: "}, "query"), "document",
     Prompt("q: ", "query")),                               # default_prompt_name wins
    (SavedPrompts({"document": "", "corpus": "c: "}), "document", Prompt("c: ", "corpus")),
    (SavedPrompts({"document": "", "query": "Instruct: x\nQuery:"}), "document", Prompt()),
    (SavedPrompts({"search_document": "sd: "}), "document", Prompt()),
    (SavedPrompts({"search_query": "sq: "}), "query", Prompt()),
    (SavedPrompts({}), "query", Prompt()),
])
def test_the_model_s_own_prompt_for_each_side(saved, side, expected):
    assert choose(saved, "m", side) == expected


def test_the_user_s_prompt_by_text_or_by_name():
    assert choose(E5, "m", "document", text="") == Prompt("", None)
    assert choose(E5, "m", "document", text="x: ") == Prompt("x: ")
    assert choose(E5, "m", "document", name="query") == Prompt("query: ", "query")
    assert choose(E5, "m", "query", text="passage: ", name="passage") == Prompt("passage: ",
                                                                               "passage")
    with pytest.raises(UserError, match=r"model 'm' has no prompt named 'doc' \(its prompts: "
                                        r"passage, query\)"):
        choose(E5, "m", "document", name="doc")


def test_a_saved_config_reads_as_its_prompts():
    saved = SavedPrompts.of({"prompts": {"query": "q", "document": None},
                             "default_prompt_name": ""})
    assert saved == SavedPrompts({"query": "q"}, None)


def test_the_prompt_length_a_pooling_leaves_out_is_the_library_s():
    assert prompt_token_count([101, 7, 8, 102], {101, 102}) == 3      # [CLS] p r, not [SEP]
    assert prompt_token_count([7, 8], {101, 102}) == 2
    assert prompt_token_count([], {101}) == 0


ROUTES = {"query": ["query_0_Transformer"], "document": ["document_0_Transformer"]}


@pytest.mark.parametrize("parameters, side, expected", [
    ({}, "document", "document"),
    ({}, "query", "query"),
    ({"route_mappings": {"('query', 'text')": "document"}}, "query", "document"),
    ({"route_mappings": {"(None, None)": "query"}}, "document", "query"),      # before the name
    ({"route_mappings": {"('query', None)": "query"}}, "document", "document"),
])
def test_a_router_s_route_for_each_side_is_the_library_s(parameters, side, expected):
    assert route_for(ROUTES, parameters, side) == expected


def test_a_router_without_a_route_for_the_side_takes_its_default():
    routes = {"fast": ["a"], "slow": ["b"]}
    assert route_for(routes, {"default_route": "slow"}, "document") == "slow"
    assert route_for(routes, {}, "query") == "fast"              # the first, as the library's
    with pytest.raises(UserError, match="no route for a document"):
        route_for(routes, {"allow_empty_key": False}, "document")


def test_a_preset_s_prompt_gives_way_to_the_user_s_by_either_name():
    assert apply_preset({"preset": "e5", "prompt_name": "x"})["prompt_name"] == "x"
    assert "prompt" not in apply_preset({"preset": "e5", "prompt_name": "x"})
    assert apply_preset({"preset": "e5"})["prompt"] == "passage: "
    assert apply_preset({"preset": "e5", "query_prompt": ""})["query_prompt"] == ""
    JobConfig.from_dict(apply_preset({"preset": "embeddinggemma", "prompt_name": "document"}))


def test_a_format_2_record_loads_with_no_prompt_and_its_export_cut(tmp_path):
    """Format 2 recorded no prompt (the run had none) and kept `truncate_dim` in its run
    options, where it cut only the int8 / binary exports."""
    info = ModelInfo("m", "/m", "transformers", "/m", 64, "[SEP]", 0, 8, "cls", False)
    job = JobRecord.new(JobConfig.of(), info, {"weights": "sha256:x"}, "cpu", "fp32")
    data = json.loads(job.to_json())
    data["format"] = 2
    data["config"]["options"]["truncate_dim"] = 4
    for key in ("prompt", "prompt_name", "query_prompt", "query_prompt_name", "prompt_skip",
                "lowercase"):
        del data["model"][key]
    old = JobRecord.from_json(json.dumps(data), "old")
    assert (old.model.prompt, old.model.query_prompt, old.export_truncate_dim) == ("", None, 4)
    assert "prompt" not in old.h5_attributes() and old.compat_attrs()["prompt"] == ""
    again = JobRecord.from_json(old.to_json(), "again")
    assert again == old and json.loads(old.to_json())["format"] == 3
    assert old.facts()["query prompt"] == "not recorded (the model's own)"


def test_previous_vectors_are_reused_only_under_the_same_prompt():
    """A file made before prompts existed has no `prompt` attribute: it was made without one,
    and reads as such; vectors made under another prompt are refused."""
    from ray_job.read.previous import Previous, check_compatible

    info = ModelInfo("m", "/m", "transformers", "/m", 64, "[SEP]", 0, 8, "cls", False)
    plain = JobRecord.new(JobConfig.of(), info, {"weights": "sha256:x"}, "cpu", "fp32")
    prompted = JobRecord.new(JobConfig.of(prompt="passage: "),
                             ModelInfo(**{**info.to_dict(), "prompt": "passage: "}),
                             {"weights": "sha256:x"}, "cpu", "fp32")
    old = {k: v for k, v in plain.h5_attributes().items()}
    assert "prompt" not in old
    previous = Previous("old.h5", *([None] * 3), 0, attrs=old)
    check_compatible(previous, plain.compat_attrs(), "old")
    with pytest.raises(UserError, match=r"other settings \(prompt: '' -> 'passage: '\)"):
        check_compatible(previous, prompted.compat_attrs(), "old")
    made = Previous("new.h5", *([None] * 3), 0, attrs=prompted.h5_attributes())
    with pytest.raises(UserError, match=r"prompt: 'passage: ' -> ''"):
        check_compatible(made, plain.compat_attrs(), "new")
