"""`foundry serve --instances 2 --esp` behind the real `openai` client: the elastic cluster (threads here;
Ray processes in the CLI) answers as one engine does, including a prompt larger than one instance."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import openai
import pytest
from typer.testing import CliRunner

from foundry.cli import app as cli_app
from foundry.serve import EngineConfig, LLMEngine, SamplingParams
from foundry.serve.elastic.engine import build_elastic_engine
from foundry.serve.server import create_app, serve_in_thread

# 12 blocks of 16 = 192 KV slots per instance; the oracle engine gets room for everything
CONFIG = EngineConfig(max_num_seqs=4, max_model_len=320, num_device_blocks=12)


@pytest.fixture(scope="module")
def esp_server() -> Iterator[SimpleNamespace]:
    engine = build_elastic_engine(CONFIG, num_instances=2, esp=True, backend="local")
    with serve_in_thread(create_app(engine, max_waiting=16)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        yield SimpleNamespace(engine=engine, client=client)
    engine.shutdown()


def _offline(prompts: list[str], max_tokens: int) -> list[str]:
    roomy = CONFIG.cache.model_copy(update={"num_device_blocks": 64})
    engine = LLMEngine(CONFIG.model_copy(update={"cache": roomy}))
    outs = engine.generate(prompts, SamplingParams(max_tokens=max_tokens, temperature=0))
    return [o.text for o in outs]


def test_completions_equal_one_engine_greedy_including_a_prompt_larger_than_an_instance(esp_server):
    long_prompt = "the elastic cluster spreads this prompt over instances; " * 5  # > 192 byte tokens
    prompts = ["hello", "a b c d e f", long_prompt]
    ref = _offline(prompts, 12)
    for prompt, want in zip(prompts, ref, strict=True):
        got = esp_server.client.completions.create(model="foundry-tiny", prompt=prompt, max_tokens=12,
                                                   temperature=0)
        assert got.choices[0].text == want
    assert len(esp_server.engine.tokenizer.encode(long_prompt)) > 192
    # streamed, the pieces add up to the same text
    stream = esp_server.client.completions.create(model="foundry-tiny", prompt=prompts[1], max_tokens=12,
                                                  temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in stream) == ref[1]
    # a stop string ends the text before it (and the cluster drops the request's KV)
    stop = ref[1][3]
    got = esp_server.client.completions.create(model="foundry-tiny", prompt=prompts[1], max_tokens=12,
                                               temperature=0, stop=[stop])
    assert got.choices[0].text == ref[1].split(stop)[0] and got.choices[0].finish_reason == "stop"
    assert esp_server.engine.stats().device_kv_usage == 0.0


def test_what_the_elastic_engine_cannot_do_is_a_400(esp_server):
    with pytest.raises(openai.BadRequestError, match="n"):
        esp_server.client.completions.create(model="foundry-tiny", prompt="hi", max_tokens=4, n=2)
    with pytest.raises(openai.BadRequestError, match="context"):
        esp_server.client.completions.create(model="foundry-tiny", prompt="x" * 300, max_tokens=100)


def test_cli_refuses_esp_without_instances_naming_the_option():
    result = CliRunner().invoke(cli_app, ["serve", "--esp"])
    assert result.exit_code != 0 and "--esp" in result.output
