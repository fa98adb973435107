"""Speculative decoding against plain greedy decoding, side by side, per workload, proposer and batch.

- repetitive: held-out standard-library snippets continued greedily for `--output-len` tokens; a small
  model's greedy continuation of code keeps repeating itself, which prompt lookup catches;
- extractive: a held-out snippet followed by its own first lines again (copying it would continue it);
  foundry-small (7.4M tokens seen) copies only a little, so this shows what a weak assumption costs;
- azure-conv: prompts of held-out text with the Azure LLM inference trace's conversation lengths
  (`foundry.serve.bench.workloads`, scaled to the model's context), nothing to copy.

Each (workload, proposer, batch) runs the same requests greedily on a fresh engine with speculation —
adaptive (drafting only while it is measured faster: the default for a draft model) and always on (the
default for ngram lookup; the acceptance guard still applies) — and on one without;
batch 1 runs the requests one at a time (latency), batch 8 all together. Reported: output tokens/s,
the ratio to plain ("speedup"), the acceptance rate, and whether every output is identical.
foundry-small (target) and foundry-small-draft on this CPU, one thread.

    OMP_NUM_THREADS=1 python benchmarks/serve/speculative.py [--json]
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
from foundry.serve.bench.workloads import build_workload


def workloads(stream: list[int], args) -> dict[str, tuple[list[list[int]], list[int]]]:
    rng = random.Random(args.seed)
    repetitive, extractive = [], []
    for _ in range(args.num_requests):
        start = rng.randrange(len(stream) - 400)
        repetitive.append(stream[start:start + 64])
        snippet = stream[start:start + 160]
        extractive.append(snippet + snippet[:16])
    conv = build_workload(num_requests=args.num_requests, rate=1.0, generator="azure-conv", prompt_len=128,
                          output_len=64, length_scale=0.25, max_prompt_len=400, max_output_len=120,
                          seed=args.seed)
    conv_prompts, conv_out = [], []
    for spec in conv.requests:
        start = rng.randrange(len(stream) - spec.prompt_len - 1)
        conv_prompts.append(stream[start:start + spec.prompt_len])
        conv_out.append(spec.output_len)
    n = args.output_len
    return {"repetitive": (repetitive, [n] * len(repetitive)),
            "extractive": (extractive, [n] * len(extractive)), "azure-conv": (conv_prompts, conv_out)}


def run(config: EngineConfig, prompts: list[list[int]], lengths: list[int]) -> tuple[float, list, LLMEngine]:
    engine = LLMEngine(config)
    engine.generate([prompts[0][:8]], SamplingParams(max_tokens=4, temperature=0.0))  # warm-up
    params = [SamplingParams(max_tokens=n, temperature=0.0, ignore_eos=True) for n in lengths]
    start = time.perf_counter()
    outs = engine.generate(prompts, params)
    return sum(lengths) / (time.perf_counter() - start), [o.output_token_ids for o in outs], engine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="foundry-small")
    ap.add_argument("--draft-model", default="foundry-small-draft")
    ap.add_argument("--num-requests", type=int, default=8)
    ap.add_argument("--output-len", type=int, default=128, help="output tokens (repetitive, extractive)")
    ap.add_argument("--num-tokens", type=int, default=4, help="draft tokens per step (k)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workloads", default="repetitive,extractive,azure-conv")
    ap.add_argument("--methods", default="ngram,draft")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    _, tokenizer, _ = load_model(args.model)
    stream = held_out_stream(tokenizer).tolist()
    rows = []
    for name, (prompts, lengths) in workloads(stream, args).items():
        if name not in args.workloads.split(","):
            continue
        for batch in (1, args.num_requests):
            base = {"model": args.model, "max_num_seqs": batch, "num_device_blocks": 1024}
            plain_tps, plain_out, _ = run(EngineConfig(**base), prompts, lengths)
            for method in args.methods.split(","):
                for adaptive in (True, False):
                    cfg = EngineConfig(**base, speculative_method=method, speculative_adaptive=adaptive,
                                       speculative_num_tokens=args.num_tokens,
                                       speculative_draft_model=args.draft_model)
                    tps, out, engine = run(cfg, prompts, lengths)
                    stats = engine.stats()
                    default = cfg.speculative.speed_guard == EngineConfig(
                        speculative_method=method).speculative.speed_guard  # what the engine does unless told
                    rows.append({"workload": name, "batch": batch, "draft": method, "adaptive": adaptive,
                                 "default": default,
                                 "speedup": tps / plain_tps, "acceptance_rate": stats.spec_acceptance_rate,
                                 "identical": out == plain_out, "tok_per_s": tps,
                                 "plain_tok_per_s": plain_tps, "draft_tokens": stats.spec_draft_tokens,
                                 "output_tokens": sum(lengths)})
                    if not args.json:
                        r = rows[-1]
                        print(f"{name:>11} batch {batch} {method:>5} adaptive={adaptive!s:>5}"
                              f"{' (default)' if default else ''}: "
                              f"{r['speedup']:.2f}x ({tps:.1f} vs {plain_tps:.1f} tok/s), acceptance "
                              f"{r['acceptance_rate']:.2f}, identical {r['identical']}", flush=True)
    if args.json:
        print(json.dumps({"results": rows, "setup": vars(args)}))


if __name__ == "__main__":
    main()
