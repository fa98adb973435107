"""Prefix caching on and off, side by side: requests that share a long system prompt.

Each request is `--shared` tokens of one system prompt followed by `--own` tokens of its own, and asks
for `--output` tokens (greedy). Requests arrive as a Poisson process at `--rate`; the same arrivals,
prompts and engine settings run with `enable_prefix_caching` off, then on (foundry-tiny, this CPU,
`OMP_NUM_THREADS=1`), each after a warm-up request. Reported: mean TTFT and output tokens/s of each run,
their ratios, the cache's hit rate, and whether every output is identical.

    OMP_NUM_THREADS=1 python benchmarks/serve/prefix_cache.py [--num-requests 40] [--rate 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import torch

from foundry.serve import EngineConfig, LLMEngine, SamplingParams


def run(caching: bool, prompts: list[list[int]], arrivals: list[float], args) -> dict:
    engine = LLMEngine(EngineConfig(max_num_seqs=16, num_device_blocks=1024, enable_prefix_caching=caching))
    params = SamplingParams(max_tokens=args.output, temperature=0.0, ignore_eos=True)
    engine.generate([[1, 2, 3]], SamplingParams(max_tokens=2, temperature=0.0))  # warm-up, no shared tokens
    t0, nxt, ttft, outs = time.monotonic(), 0, {}, {}
    while nxt < len(prompts) or engine.has_unfinished_requests():
        now = time.monotonic() - t0
        while nxt < len(prompts) and arrivals[nxt] <= now:
            engine.add_request(f"r{nxt}", prompts[nxt], params, arrival_time=t0 + arrivals[nxt])
            nxt += 1
        if not engine.has_unfinished_requests():
            time.sleep(max(0.0, arrivals[nxt] - (time.monotonic() - t0)))
            continue
        for out in engine.step():
            if out.request_id not in ttft:
                ttft[out.request_id] = out.first_token_time - out.arrival_time
            if out.finished:
                outs[out.request_id] = out.output_token_ids
    wall = time.monotonic() - t0
    stats = engine.stats()
    return {"mean_ttft_s": statistics.mean(ttft.values()), "p50_ttft_s": statistics.median(ttft.values()),
            "output_tok_per_s": len(prompts) * args.output / wall, "wall_s": wall,
            "hit_rate": stats.prefix_cache_hit_rate, "outputs": [outs[f"r{i}"] for i in range(len(prompts))]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-requests", type=int, default=40)
    ap.add_argument("--rate", type=float, default=4.0, help="arrivals per second (Poisson)")
    ap.add_argument("--shared", type=int, default=1024, help="tokens of the shared system prompt")
    ap.add_argument("--own", type=int, default=32, help="tokens of each request's own part")
    ap.add_argument("--output", type=int, default=16, help="output tokens per request")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    system = [rng.randrange(1, 250) for _ in range(args.shared)]
    prompts = [system + [rng.randrange(1, 250) for _ in range(args.own)] for _ in range(args.num_requests)]
    t, arrivals = 0.0, []
    for _ in prompts:
        t += rng.expovariate(args.rate)
        arrivals.append(t)
    off, on = run(False, prompts, arrivals, args), run(True, prompts, arrivals, args)
    result = {
        "ttft_ratio": off["mean_ttft_s"] / on["mean_ttft_s"],
        "throughput_ratio": on["output_tok_per_s"] / off["output_tok_per_s"],
        "hit_rate": on["hit_rate"], "identical": off["outputs"] == on["outputs"],
        "off": {k: v for k, v in off.items() if k not in ("outputs", "hit_rate")},
        "on": {k: v for k, v in on.items() if k != "outputs"},
        "setup": {**vars(args), "model": "foundry-tiny", "device": "cpu", "torch_threads": 1},
    }
    if args.json:
        print(json.dumps(result))
        return
    for name in ("off", "on"):
        r = result[name]
        print(f"caching {name:>3}: mean TTFT {r['mean_ttft_s'] * 1e3:7.1f} ms  "
              f"p50 {r['p50_ttft_s'] * 1e3:7.1f} ms  {r['output_tok_per_s']:7.1f} output tok/s")
    print(f"TTFT {result['ttft_ratio']:.2f}x better, throughput {result['throughput_ratio']:.2f}x, "
          f"hit rate {result['hit_rate']:.3f}, outputs identical: {result['identical']}")


if __name__ == "__main__":
    main()
