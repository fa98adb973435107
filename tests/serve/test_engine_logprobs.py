"""Every output token's logprob kept on the request, against a dense recomputation over prompt + output."""

import pytest
import torch

from foundry.llm import AttentionMetadata
from foundry.serve import SamplingParams

PROMPTS = [[1, 2, 3], [7] * 21, [40, 41, 42, 43, 44, 45], [9]]


def dense_logits(model, ids):
    """A plain forward over the whole sequence, no KV cache: logits [len(ids), V]."""
    with torch.no_grad():
        h = model(torch.tensor(ids), torch.arange(len(ids)), None, AttentionMetadata.dense([len(ids)]))
        return model.compute_logits(h)


def recomputed(model, out, temperature: float, top_k: int = -1) -> torch.Tensor:
    """The logprob of each output token under logits / temperature, restricted to the top k."""
    ids = out.prompt_token_ids + out.output_token_ids
    p = len(out.prompt_token_ids)
    logits = dense_logits(model, ids)[p - 1:len(ids) - 1] / temperature  # the logits each token came from
    if top_k > 0:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(out.output_token_ids)[:, None])[:, 0]


@pytest.mark.parametrize(("mode", "temperature"), [("raw", 1.0), ("raw", 0.7), ("processed", 1.0),
                                                   ("processed", 0.7), ("processed", 0.0)])
def test_kept_logprobs_equal_a_dense_recomputation(make_engine, mode, temperature):
    engine = make_engine(logprobs_mode=mode, max_num_batched_tokens=16)  # chunked prompts, mixed batches
    params = [SamplingParams(max_tokens=12, temperature=temperature, seed=i, ignore_eos=True,
                             return_output_logprobs=True) for i in range(len(PROMPTS))]
    outs = engine.generate(PROMPTS, params)
    for out in outs:
        assert len(out.output_logprobs) == len(out.output_token_ids) == 12
        t = temperature if mode == "processed" and temperature > 0 else 1.0
        want = recomputed(engine.model, out, t)
        assert (torch.tensor(out.output_logprobs) - want).abs().max() <= 1e-5
    # asking for them changes no sampled token
    plain = [SamplingParams(max_tokens=12, temperature=temperature, seed=i, ignore_eos=True)
             for i in range(len(PROMPTS))]
    again = make_engine(logprobs_mode=mode, max_num_batched_tokens=16).generate(PROMPTS, plain)
    assert [o.output_token_ids for o in again] == [o.output_token_ids for o in outs]
    assert all(o.output_logprobs is None for o in again)


def test_processed_logprobs_are_of_the_filtered_distribution(make_engine):
    engine = make_engine(logprobs_mode="processed")
    p = SamplingParams(max_tokens=10, temperature=0.7, top_k=5, seed=1, ignore_eos=True,
                       return_output_logprobs=True, logprobs=8)
    engine.add_request("a", [1, 2, 3], p)
    outs = []
    while engine.has_unfinished_requests():
        outs += engine.step()
    final = outs[-1]
    want = recomputed(engine.model, final, 0.7, top_k=5)
    assert (torch.tensor(final.output_logprobs) - want).abs().max() <= 1e-5
    # every step's output carries the list so far; the per-step entries agree with it
    assert [len(o.output_logprobs) for o in outs] == list(range(1, 11))
    assert [o.logprobs[0].logprob for o in outs] == final.output_logprobs
    assert all(len(o.logprobs[0].top) == 5 for o in outs)  # tokens outside the top 5 are no alternatives


def test_logprobs_survive_preemption_by_recompute(make_engine):
    """Preempted requests recompute their KV; the kept logprobs still match the dense model."""
    engine = make_engine(num_device_blocks=10, block_size=4, max_num_seqs=4)
    params = SamplingParams(max_tokens=10, temperature=1.0, seed=5, ignore_eos=True,
                            return_output_logprobs=True)
    outs = engine.generate(PROMPTS, [params] * len(PROMPTS))
    assert engine.stats().num_preemptions > 0
    for out in outs:
        assert (torch.tensor(out.output_logprobs) - recomputed(engine.model, out, 1.0)).abs().max() <= 1e-5


def test_kept_logprobs_travel_with_a_migrated_request(make_engine):
    src, dst = make_engine(), make_engine()
    p = SamplingParams(max_tokens=10, temperature=1.0, seed=2, ignore_eos=True, return_output_logprobs=True)
    src.add_request("a", [1, 2, 3, 4], p)
    for _ in range(4):
        src.step()
    dst.migrate_in(src.migrate_out("a"))
    outs = []
    while dst.has_unfinished_requests():
        outs += dst.step()
    out = outs[-1]
    assert len(out.output_logprobs) == 10
    assert (torch.tensor(out.output_logprobs) - recomputed(dst.model, out, 1.0)).abs().max() <= 1e-5
