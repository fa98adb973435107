"""A checkpoint directory that cannot be loaded gives a ValueError naming the file and what is wrong."""

import json

import pytest

from foundry.llm import load_model

GOOD = {"architectures": ["LlamaForCausalLM"], "vocab_size": 300, "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({k: v for k, v in GOOD.items() if k != "vocab_size"}, r"config.json: missing field\(s\) vocab_size"),
        ({"architectures": ["LlamaForCausalLM"]}, "missing field.* vocab_size, hidden_size, intermediate"),
        ({**GOOD, "hidden_size": 0}, "config.json: hidden_size: expected a positive integer, got 0"),
        ({**GOOD, "num_key_value_heads": "2"}, "config.json: "),  # a wrong type deeper in
        ({**GOOD, "architectures": ["GPT2LMHeadModel"]}, "config.json: architectures: 'GPT2LMHeadModel'"),
        ("{not json", "config.json is not valid JSON"),
        ("[1, 2]", "config.json holds a JSON list, expected an object"),
        (b"\x89HDF\r\n\x1a\n\xff", "config.json is not valid JSON"),
    ],
)
def test_a_bad_config_json_is_named(tmp_path, config, match):
    file = tmp_path / "config.json"
    if isinstance(config, bytes):
        file.write_bytes(config)
    else:
        file.write_text(config if isinstance(config, str) else json.dumps(config))
    with pytest.raises(ValueError, match=f"^model: .*{match}"):
        load_model(str(tmp_path))


def test_a_missing_dir_or_config_is_named(tmp_path):
    with pytest.raises(ValueError, match="neither a built-in model .*foundry-tiny.* nor a checkpoint"):
        load_model(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="has no config.json"):
        load_model(str(tmp_path))
