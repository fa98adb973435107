"""LLMEngine behaviour: the contract's errors, stopping rules, abort, stats, records, weights."""

import pytest
import torch

from foundry.serve import EngineConfig, SamplingParams

GREEDY = SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True)


def run_to_end(engine):
    outs = []
    while engine.has_unfinished_requests():
        outs += engine.step()
        engine.block_manager.check_invariants()
    return outs


def test_generate_matches_a_plain_greedy_loop(make_engine):
    engine = make_engine()
    prompt = engine.tokenizer.encode("the quick brown fox")
    [out] = engine.generate([prompt], GREEDY)
    ids = list(prompt)
    from foundry.llm import AttentionMetadata

    with torch.no_grad():
        for _ in range(8):
            meta = AttentionMetadata.dense([len(ids)])
            h = engine.model(torch.tensor(ids), torch.arange(len(ids)), None, meta)
            ids.append(int(engine.model.compute_logits(h[-1:]).argmax()))
    assert out.output_token_ids == ids[len(prompt):]
    assert out.finished and out.finish_reason == "length" and out.prompt_token_ids == prompt
    assert out.text == engine.tokenizer.decode(out.output_token_ids)
    assert out.arrival_time <= out.first_token_time <= out.finish_time


def test_add_request_errors_name_the_field(make_engine):
    engine = make_engine(max_model_len=64)
    with pytest.raises(ValueError, match="^temperature"):
        engine.add_request("a", "hi", SamplingParams(temperature=-1))
    with pytest.raises(ValueError, match="^prompt"):
        engine.add_request("a", "", SamplingParams())
    with pytest.raises(ValueError, match="^prompt"):
        engine.add_request("a", [1, 2, 9999], SamplingParams())
    with pytest.raises(ValueError, match="max_model_len"):
        engine.add_request("a", [1] * 60, SamplingParams(max_tokens=5))
    engine.add_request("a", "hi", SamplingParams())
    with pytest.raises(ValueError, match="^request_id"):
        engine.add_request("a", "hi", SamplingParams())
    with pytest.raises(ValueError, match="^max_tokens"):
        make_engine(num_device_blocks=2, block_size=4).add_request("b", [1] * 4, SamplingParams(max_tokens=8))


@pytest.mark.parametrize(("field", "value"), [("max_tokens", 0), ("top_p", 0.0), ("top_p", 1.5),
                                              ("logprobs", 21), ("stop", [""]), ("stop_token_ids", [-1]),
                                              ("seed", 1.5), ("top_k", 2.0)])
def test_sampling_params_validate(field, value):
    with pytest.raises(ValueError, match=f"^{field}:"):
        SamplingParams(**{field: value}).validate()


def test_engine_config_is_validated_and_frozen(make_engine):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="dtype"):
        EngineConfig(dtype="float8")
    with pytest.raises(ValidationError, match="block_size"):
        EngineConfig(block_size=0)
    with pytest.raises(ValidationError, match="policy"):
        EngineConfig(policy="lifo")
    cfg = EngineConfig()
    with pytest.raises(ValidationError):
        cfg.block_size = 8
    with pytest.raises(ValueError, match="max_model_len"):
        make_engine(max_model_len=10_000)


def test_abort_frees_blocks_at_once(make_engine):
    engine = make_engine(block_size=4)
    engine.add_request("a", [5] * 20, GREEDY)
    engine.add_request("b", [6] * 9, GREEDY)
    engine.step()
    assert engine.block_manager.num_blocks("a") == 5 and engine.stats().num_running == 2
    engine.abort_request("a")
    engine.abort_request("unknown")
    assert engine.block_manager.num_blocks("a") == 0
    engine.block_manager.check_invariants()
    outs = run_to_end(engine)
    assert {o.request_id for o in outs} == {"b"}
    assert engine.block_manager.num_free_device_blocks == engine.block_manager.device.num_blocks
    assert engine.stats().num_aborted == 1


def test_stop_token_ids_eos_and_ignore_eos(make_engine):
    engine = make_engine()
    prompt = [10, 20, 30]
    [free] = engine.generate([prompt], SamplingParams(max_tokens=6, temperature=0.0, ignore_eos=True))
    third = free.output_token_ids[2]
    stop_params = SamplingParams(max_tokens=6, temperature=0.0, stop_token_ids=[third])
    [stopped] = engine.generate([prompt], stop_params)
    assert stopped.output_token_ids == free.output_token_ids[:3] and stopped.finish_reason == "stop"
    engine.tokenizer.eos_token_id = free.output_token_ids[1]  # pretend the model's 2nd token is EOS
    [eos] = engine.generate([prompt], SamplingParams(max_tokens=6, temperature=0.0))
    [ign] = engine.generate([prompt], SamplingParams(max_tokens=6, temperature=0.0, ignore_eos=True))
    assert eos.output_token_ids == free.output_token_ids[:2] and eos.finish_reason == "stop"
    assert ign.output_token_ids == free.output_token_ids and ign.finish_reason == "length"


def test_stop_strings_cut_text_and_deltas_never_leak_them(make_engine):
    engine = make_engine()
    prompt = [40, 41, 42]
    [free] = engine.generate([prompt], SamplingParams(max_tokens=12, temperature=0.0, ignore_eos=True))
    text = engine.tokenizer.decode(free.output_token_ids)
    stop = text[3:5]
    assert len(stop) == 2 and text.find(stop) == 3
    engine.add_request("s", prompt, SamplingParams(max_tokens=12, temperature=0.0, stop=[stop]))
    outs = run_to_end(engine)
    assert outs[-1].finished and outs[-1].finish_reason == "stop"
    assert outs[-1].text == text[:3] == "".join(o.new_text for o in outs)
    assert all(stop[0] not in o.new_text for o in outs[:-1] if len(o.text) >= 3)


def test_logprobs_are_the_model_distribution(make_engine):
    engine = make_engine()
    engine.add_request("a", [1, 2, 3], SamplingParams(max_tokens=2, temperature=0.0, logprobs=3))
    [first] = engine.step()
    [lp] = first.logprobs
    assert lp.token_id == first.new_token_ids[0]
    assert len(lp.top) == 3 and max(lp.top.values()) == pytest.approx(lp.logprob)  # greedy = the top
    assert all(v <= 0 for v in lp.top.values())


def test_seeded_sampling_is_reproducible_and_batch_independent(make_engine):
    p = SamplingParams(max_tokens=10, temperature=1.0, top_k=20, top_p=0.9, seed=7, ignore_eos=True)
    a = make_engine().generate([[1, 2, 3]], p)[0].output_token_ids
    others = [[9] * n for n in (2, 5, 11)]
    b = make_engine().generate(others + [[1, 2, 3]], [SamplingParams(max_tokens=4)] * 3 + [p])[-1]
    assert a == b.output_token_ids
    c = make_engine().generate([[1, 2, 3]], SamplingParams(max_tokens=10, seed=8, ignore_eos=True))[0]
    assert c.output_token_ids != a


def test_stats_and_iteration_records(make_engine):
    engine = make_engine(max_num_batched_tokens=8)
    engine.add_request("a", [3] * 12, GREEDY)
    engine.add_request("b", [4] * 3, GREEDY)
    engine.step()
    s = engine.stats()
    assert s.num_running == 1 and s.num_waiting == 1 and 0 < s.device_kv_usage < 1
    run_to_end(engine)
    recs = engine.iteration_records
    assert recs[0].num_prefill_tokens == 8 and recs[0].num_decode_tokens == 0 and recs[0].num_seqs == 1
    assert sum(r.num_prefill_tokens + r.num_decode_tokens for r in recs) == 12 + 3 + 2 * 7
    assert all(r.elapsed >= r.execute_time > 0 for r in recs)
    assert engine.stats().num_finished == 2 and engine.stats().num_steps == len(recs)


def test_fcfs_policy_serves_requests(make_engine):
    engine = make_engine(policy="fcfs", max_num_seqs=2)
    outs = engine.generate([[1, 2], [3, 4, 5], [6]], GREEDY)
    ref = make_engine().generate([[1, 2], [3, 4, 5], [6]], GREEDY)
    assert [o.output_token_ids for o in outs] == [o.output_token_ids for o in ref]


def test_load_weights_changes_outputs_and_tags_versions(make_engine):
    engine = make_engine()
    before = engine.generate([[1, 2, 3]], GREEDY)[0]
    assert before.weight_versions == [0] * 8
    state = {k: v * 0.5 for k, v in engine.model.state_dict().items()}
    engine.load_weights(state, version=3)
    after = engine.generate([[1, 2, 3]], GREEDY)[0]
    assert after.weight_versions == [3] * 8 and after.output_token_ids != before.output_token_ids


def test_chat_template_and_string_prompts(make_engine):
    engine = make_engine()
    text = engine.tokenizer.apply_chat_template([{"role": "user", "content": "hello"}])
    [out] = engine.generate([text], SamplingParams(max_tokens=3, temperature=0.0))
    assert out.prompt_token_ids == engine.tokenizer.encode(text) and len(out.output_token_ids) <= 3
    assert engine.model_name.startswith("tiny-ckpt") and engine.max_model_len == 256
