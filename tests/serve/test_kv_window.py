"""A StreamingLLM-style KV window: sinks + recent tokens kept, blocks between freed, memory bounded."""

import dataclasses

import pytest
import torch

from foundry.serve import SamplingParams
from foundry.serve.config import EngineConfig

GREEDY = SamplingParams(max_tokens=60, temperature=0.0, ignore_eos=True)
PROMPT = list(range(1, 41))


def test_a_window_longer_than_the_request_changes_nothing(make_engine):
    want = make_engine(block_size=4).generate([PROMPT], GREEDY)[0].output_token_ids
    engine = make_engine(block_size=4, kv_window_tokens=200, check_invariants=True)
    assert engine.generate([PROMPT], GREEDY)[0].output_token_ids == want
    assert engine.block_manager.num_evicted_tokens("x") == 0


def test_the_window_frees_old_blocks_and_bounds_what_a_request_holds(make_engine):
    engine = make_engine(block_size=4, kv_window_tokens=16, kv_sink_tokens=4, max_num_batched_tokens=8,
                         check_invariants=True)
    bm = engine.block_manager
    engine.add_request("r", PROMPT, GREEDY)  # 40 + 60 tokens: 25 blocks without a window
    held = []
    while engine.has_unfinished_requests():
        engine.step()
        if "r" in bm.tables:
            held.append(bm.num_blocks("r"))
            assert bm.num_evicted_tokens("r") % 4 == 0
    assert max(held) <= bm.most_blocks_held(100, 8) == 1 + 6 + 1  # sinks, 16-token window + a step, partial
    assert bm.num_free_device_blocks == bm.device.num_blocks


def test_a_request_longer_than_the_pool_runs_under_a_window(make_engine):
    """100 tokens need 25 blocks; 12 are enough when only the sinks and 16 recent tokens stay."""
    with pytest.raises(ValueError, match="KV blocks"):
        make_engine(block_size=4, num_device_blocks=12).generate([PROMPT], GREEDY)
    engine = make_engine(block_size=4, num_device_blocks=12, kv_window_tokens=16, max_num_batched_tokens=8,
                         check_invariants=True)
    out = engine.generate([PROMPT], GREEDY)[0]
    assert len(out.output_token_ids) == 60


@pytest.mark.parametrize("policy", ["vllm", "mlfq", "srpt"])
def test_batches_swaps_samples_and_speculation_keep_the_accounting_right(make_engine, policy):
    prompts = [PROMPT[: 5 + 7 * i] for i in range(5)]
    params = [dataclasses.replace(GREEDY, max_tokens=20 + 9 * i, n=1 + i % 2) for i in range(5)]
    engine = make_engine(policy=policy, block_size=4, num_device_blocks=30, num_host_blocks=30,
                         kv_window_tokens=12, max_num_seqs=4, max_num_batched_tokens=16,
                         preemption_mode="swap", speculative_method="ngram", speculative_adaptive=False,
                         check_invariants=True)
    outs = engine.generate(prompts, params)
    assert [len(o.output_token_ids) for o in outs] == [p.max_tokens for p in params for _ in range(p.n)]
    assert not engine.block_manager.tables


def test_a_window_with_prefix_caching_or_fcfs_is_refused():
    with pytest.raises(ValueError, match="kv_window_tokens: not with enable_prefix_caching"):
        EngineConfig(kv_window_tokens=64, enable_prefix_caching=True)
    with pytest.raises(ValueError, match="kv_window_tokens: not with policy fcfs"):
        EngineConfig(kv_window_tokens=64, policy="fcfs")


def _masked_reference_logits(model, tokens: list[int], visible) -> torch.Tensor:
    """The model run densely over `tokens` with an explicit attention mask: `visible(i, j)` says whether
    position i sees position j. An independent oracle for the paged, evicting engine."""
    from foundry.llm.layers.rotary import apply_rotary

    n = len(tokens)
    mask = torch.tensor([[visible(i, j) for j in range(n)] for i in range(n)])
    inner = model.model
    x = inner.embed_tokens(torch.tensor(tokens))
    cos, sin = inner.rotary(torch.arange(n))
    for layer in inner.layers:
        att, h = layer.self_attn, layer.input_layernorm(x)
        q = apply_rotary(att.q_proj(h).view(n, att.num_heads, att.head_dim), cos, sin).transpose(0, 1)
        k = apply_rotary(att.k_proj(h).view(n, att.num_kv_heads, att.head_dim), cos, sin).transpose(0, 1)
        v = att.v_proj(h).view(n, att.num_kv_heads, att.head_dim).transpose(0, 1)
        o = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=att.scale,
                                                             enable_gqa=True)
        x = x + att.o_proj(o.transpose(0, 1).reshape(n, -1))
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    return model.compute_logits(inner.norm(x))


@torch.no_grad()
def test_the_engine_attends_exactly_to_the_sinks_and_the_window(make_engine):
    """Prompt chunks of 8 and decode steps: a token computed when c tokens were already computed sees the
    sink block, the blocks from max(0, c - W) // bs on, and its own chunk. Logprobs match the oracle."""
    bs, window, chunk = 4, 12, 8
    engine = make_engine(block_size=bs, kv_window_tokens=window, kv_sink_tokens=2,
                         max_num_batched_tokens=chunk, check_invariants=True)
    params = SamplingParams(max_tokens=10, temperature=0.0, ignore_eos=True, return_output_logprobs=True)
    out = engine.generate([PROMPT], params)[0]
    tokens = PROMPT + out.output_token_ids
    starts = [c for c in range(0, len(PROMPT), chunk)] + list(range(len(PROMPT), len(tokens)))

    def computed_before(i: int) -> int:  # where the chunk (or decode step) holding position i began
        return max(c for c in starts if c <= i)

    def visible(i: int, j: int) -> bool:
        c = computed_before(i)
        return j <= i and (j < bs or j >= c or j // bs >= max(0, c - window) // bs)

    logits = _masked_reference_logits(engine.model, tokens, visible)
    want = torch.log_softmax(logits, dim=-1)
    for step, token in enumerate(out.output_token_ids):
        pos = len(PROMPT) - 1 + step
        assert out.output_logprobs[step] == pytest.approx(float(want[pos, token]), abs=1e-4)
