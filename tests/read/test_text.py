import pytest

from ray_job.read.text import RejectRow, TextTemplate, record_id, template_fields


def test_template_fields_in_order_without_repeats():
    assert template_fields("{title}{sep}{abstract} {title}") == ("title", "sep", "abstract")


@pytest.mark.parametrize("bad", ["{sep}", "no fields", "{title"])
def test_bad_templates_are_refused(bad):
    with pytest.raises(ValueError):
        template_fields(bad)


def test_render_joins_fields_with_the_tokenizer_separator_and_cleans_whitespace():
    tpl = TextTemplate("{title}{sep}{abstract}", sep="[SEP]")
    record = {"title": "Calculation of\n  prompt photons", "abstract": "  A fully\ndifferential\n"}
    assert tpl.render(record) == "Calculation of prompt photons[SEP]A fully differential"


def test_render_keeps_raw_text_when_cleaning_is_off():
    tpl = TextTemplate("{abstract}", clean_whitespace=False)
    assert tpl.render({"abstract": "  a\nb\n"}) == "  a\nb\n"


@pytest.mark.parametrize("record, reason", [
    ({"title": "t"}, "missing_abstract"),
    ({"title": "t", "abstract": None}, "missing_abstract"),
    ({"title": "t", "abstract": "   "}, "missing_abstract"),
    ({"title": "t", "abstract": 3}, "bad_type_abstract"),
    ({"title": ["t"], "abstract": "a"}, "bad_type_title"),
])
def test_rows_that_cannot_fill_the_template_are_rejected_with_a_reason(record, reason):
    with pytest.raises(RejectRow) as err:
        TextTemplate("{title}{sep}{abstract}").render(record)
    assert err.value.reason == reason


def test_missing_policy_empty_fills_blank_fields_but_rejects_rows_with_no_text():
    tpl = TextTemplate("{title}{sep}{abstract}", sep="|", missing="empty")
    assert tpl.render({"title": "only a title"}) == "only a title|"
    with pytest.raises(RejectRow) as err:
        tpl.render({"title": None, "abstract": ""})
    assert err.value.reason == "empty_text"


def test_record_id_accepts_strings_and_integers_and_rejects_missing_ones():
    assert record_id({"id": " 0704.0001 "}, "id") == " 0704.0001 "     # exact: never stripped
    assert record_id({"corpusid": 12345}, "corpusid") == "12345"
    for bad in ({}, {"id": None}, {"id": ""}):
        with pytest.raises(RejectRow) as err:
            record_id(bad, "id")
        assert err.value.reason == "missing_id"
