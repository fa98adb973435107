"""What a StreamingLLM-style KV window does to outputs and memory, against keeping all KV.

Held-out standard-library prompts of `--prompt-len` tokens are streamed in chunks of
`--max-num-batched-tokens` (so the window acts while the prompt comes in) and continued greedily for
`--output-len` tokens, with all KV kept and with windows of several sizes (4 sink tokens). Reported per
window: the share of output tokens equal to full-KV decoding, the mean position of the first
difference, the teacher-forced mean log-probability the full-KV model gives to the windowed outputs
(how plausible they stay), the most KV blocks a request held, and output tokens/s.

    OMP_NUM_THREADS=1 python benchmarks/serve/kv_window.py [--windows 64,128,256] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch

from foundry.llm.loader import load_model
from foundry.llm.pretrain import held_out_stream
from foundry.serve import EngineConfig, LLMEngine, SamplingParams
from foundry.serve.core import StepObserver


class MostHeld(StepObserver):
    def __init__(self, engine: LLMEngine) -> None:
        self.bm, self.most = engine.block_manager, 0

    def step_ended(self, *_: object) -> None:
        self.most = max([self.most, *(len(t.blocks) for t in self.bm.tables.values())])


def run(window: int | None, prompts: list[list[int]], args) -> tuple[list[list[int]], int, float]:
    config = EngineConfig(model=args.model, kv_window_tokens=window, kv_sink_tokens=4,
                          max_num_batched_tokens=args.max_num_batched_tokens, num_device_blocks=2048)
    engine = LLMEngine(config)
    params = SamplingParams(max_tokens=args.output_len, temperature=0.0, ignore_eos=True)
    watch = MostHeld(engine)
    with engine.core.observe(watch):
        start = time.perf_counter()
        outs = engine.generate(prompts, params)
        tps = len(prompts) * args.output_len / (time.perf_counter() - start)
    return [o.output_token_ids for o in outs], watch.most, tps


@torch.no_grad()
def mean_logprob(model, prompt: list[int], output: list[int]) -> float:
    """Mean log p(output | prompt) under the full model (dense attention over everything)."""
    from foundry.llm.layers.attention import AttentionMetadata

    ids = torch.tensor(prompt + output)
    hidden = model(ids[:-1], torch.arange(len(ids) - 1), None, AttentionMetadata.dense([len(ids) - 1]))
    logp = torch.log_softmax(model.compute_logits(hidden[len(prompt) - 1:]), dim=-1)
    return float(logp.gather(1, torch.tensor(output)[:, None]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="foundry-small")
    ap.add_argument("--windows", default="64,128,256")
    ap.add_argument("--num-requests", type=int, default=6)
    ap.add_argument("--prompt-len", type=int, default=600)
    ap.add_argument("--output-len", type=int, default=64)
    ap.add_argument("--max-num-batched-tokens", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, tokenizer, _ = load_model(args.model)
    stream = held_out_stream(tokenizer).tolist()
    rng = random.Random(args.seed)
    prompts = []
    for _ in range(args.num_requests):
        s = rng.randrange(len(stream) - args.prompt_len)
        prompts.append(stream[s:s + args.prompt_len])
    def plausibility(outs: list[list[int]]) -> float:
        return sum(mean_logprob(model, p, o) for p, o in zip(prompts, outs, strict=True)) / len(outs)

    full, full_held, full_tps = run(None, prompts, args)
    rows = [{"window": None, "same_token_share": 1.0, "first_difference": None, "most_blocks_held": full_held,
             "tok_per_s": full_tps, "mean_logprob": plausibility(full)}]
    for w in (int(x) for x in args.windows.split(",")):
        outs, held, tps = run(w, prompts, args)
        same = sum(a == b for fo, wo in zip(full, outs, strict=True) for a, b in zip(fo, wo, strict=True))
        firsts = [next((i for i, (a, b) in enumerate(zip(fo, wo, strict=True)) if a != b), len(fo))
                  for fo, wo in zip(full, outs, strict=True)]
        rows.append({"window": w, "same_token_share": same / (len(full) * args.output_len),
                     "first_difference": sum(firsts) / len(firsts), "most_blocks_held": held,
                     "tok_per_s": tps, "mean_logprob": plausibility(outs)})
    if args.json:
        print(json.dumps({"results": rows, "setup": vars(args)}))
        return
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
