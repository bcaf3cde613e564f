import pytest

from ray_job.config import JobConfig, build_config
from ray_job.errors import ConfigError


def test_yaml_settings_are_overridden_by_flags(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("inputs: a.jsonl\nmodel: m\nmax-batch-tokens: 4096\nlimit: 10\n")
    cfg = build_config(str(path), {"limit": 20, "model": None})
    assert cfg.spec.inputs == ("a.jsonl",) and cfg.spec.model == "m"
    assert cfg.options.max_batch_tokens == 4096 and cfg.options.limit == 20


@pytest.mark.parametrize("data, message", [
    ({"modle": "x"}, "unknown config key"),
    ({"precision": "fp8"}, "precision must be one of"),
    ({"limit": 0}, "limit must be a positive"),
    ({"max_batch_tokens": "many"}, "max_batch_tokens must be a whole number"),
    ({"fresh": "false"}, "fresh must be true or false"),
    ({"trust_remote_code": "false"}, "trust_remote_code must be true or false"),
    ({"limit": 2.5}, "limit must be a whole number"),
    ({"inputs": [1, 2]}, "inputs must be a string or a list of strings"),
    ({"text": "plain"}, "text must be a template"),
    ({"pooling": "max"}, "pooling must be one of"),
])
def test_bad_settings_are_one_clear_error(data, message):
    with pytest.raises(ConfigError, match=message):
        JobConfig.from_dict(data)


def test_bad_yaml_is_a_config_error(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("inputs: [a\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        build_config(str(path), {})
    with pytest.raises(ConfigError, match="not found"):
        build_config(str(tmp_path / "missing.yaml"), {})


def test_config_round_trips_as_plain_data_and_hashes_what_defines_the_output():
    cfg = JobConfig.of(inputs=("a",), model="m", limit=5)
    assert JobConfig.from_dict(cfg.to_dict()) == cfg
    assert set(cfg.to_dict()) == {"spec", "options"}
    same = JobConfig.of(inputs=("a",), model="m", limit=50, replicas=3, verbose=True)
    assert cfg.config_hash() == same.config_hash()       # resources and limit do not count
    assert cfg.config_hash() != JobConfig.of(inputs=("a",), model="m",
                                             text="{abstract}").config_hash()
    assert (JobConfig.of(url_template="arxiv").options.resolved_url_template
            == "https://arxiv.org/pdf/{id}.pdf")


def test_half_weights_are_a_precision_of_their_own_in_the_output_spec():
    hashes = {p: JobConfig.of(precision=p).config_hash()
              for p in ("auto", "fp32", "fp16", "bf16", "fp16-weights", "bf16-weights")}
    assert len(set(hashes.values())) == len(hashes)
    with pytest.raises(ConfigError, match="precision must be one of .*bf16-weights"):
        JobConfig.of(precision="bf16-weight")
