"""Templates are checked before Ray starts: `--text` may use plain `{field}`s and `{sep}` only,
`--url-template` only `{id}`; anything else is one ConfigError line, never a task traceback."""
from __future__ import annotations

import pytest

from ray_job.config import JobConfig
from ray_job.errors import ConfigError
from ray_job.read.text import TextTemplate, template_fields

NOT_PLAIN = ["{title:d}", "{title:>200000000}", "{title!r}", "{title!s}", "{title.x}",
             "{title[0]}", "{}", "{0}", "{title}{sep:>3}", "{a-b.upper}", "{title:{sep}}"]


@pytest.mark.parametrize("template", NOT_PLAIN)
def test_anything_but_plain_fields_is_refused(template):
    with pytest.raises(ValueError, match=r"only plain \{field\}") as err:
        template_fields(template)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError):
        TextTemplate(template)


@pytest.mark.parametrize("template", NOT_PLAIN)
def test_the_config_refuses_them_in_one_line(template):
    with pytest.raises(ConfigError, match=r"text: bad text template .*only plain \{field\}"):
        JobConfig.of(text=template)


def test_plain_fields_sep_literal_braces_and_dashed_names_are_fine():
    assert template_fields("{{x}} {title}{sep}{abstract-v2}") == ("title", "sep", "abstract-v2")
    assert TextTemplate("{title}: {abstract}").render({"title": "t", "abstract": "a"}) == "t: a"


def test_a_template_utf8_cannot_encode_is_refused():
    with pytest.raises(ValueError, match="UTF-8"):
        template_fields("{title} \udcff")


@pytest.mark.parametrize("url", ["https://doi.org/{doi}", "https://x/{id.upper}", "https://x/{id[0]}",
                                 "https://x/{id:>9}", "https://x/{id!r}", "https://x/{}",
                                 "https://x/{0}", "https://x/{id", "https://x/same-for-all"])
def test_a_url_template_may_only_use_plain_id(url):
    with pytest.raises(ConfigError, match="url_template") as err:
        JobConfig.of(url_template=url)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("url", ["arxiv", "https://arxiv.org/abs/{id}", "s3://b/{id}/{{raw}}.pdf"])
def test_good_url_templates_pass(url):
    assert JobConfig.of(url_template=url).options.url_template == url


@pytest.mark.parametrize("flag, value", [("--text", "{title:>200000000}"),
                                         ("--url-template", "https://doi.org/{doi}")])
def test_the_cli_says_it_in_one_line_before_anything_runs(tmp_path, capsys, flag, value):
    from ray_job.cli import main

    assert main(["run", "--output", str(tmp_path / "o"), flag, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ray-embed: error: ") and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
