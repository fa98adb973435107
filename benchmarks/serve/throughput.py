"""Offline throughput: foundry's engine vs `transformers` `generate` on the same tiny checkpoint.

Both run greedy decoding of the same requests (varied prompt and output lengths, EOS ignored, each
request stops at its own target length) on the same CPU threads, one after the other in one run.
The `transformers` baseline runs static padded batches (left padding, attention mask) of each size
in `--hf-batch-sizes`, in arrival order; a batch runs until its longest target, and only each
request's own target tokens count as output. `--hf-sorted` also forms batches after sorting by
target length, a baseline that knows output lengths in advance (an oracle).

    python benchmarks/serve/throughput.py [--num-requests 64] [--hf-sorted] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time

import torch

from foundry.llm import ModelConfig, build_model, build_tiny_tokenizer, save_checkpoint
from foundry.serve import EngineConfig, LLMEngine, SamplingParams

BENCH_MODEL = ModelConfig(vocab_size=2048, hidden_size=384, intermediate_size=1024, num_layers=6, num_heads=6,
                          num_kv_heads=2, max_position_embeddings=1024, bos_token_id=256, eos_token_id=257)


def make_requests(n: int, seed: int) -> list[tuple[list[int], int]]:
    """Prompt lengths 16..512 and output lengths 8..256, log-uniform (heavy on short ones)."""
    rng = random.Random(seed)
    reqs = []
    for _ in range(n):
        p = int(round(2 ** rng.uniform(4, 9)))
        o = int(round(2 ** rng.uniform(3, 8)))
        reqs.append(([rng.randrange(0, 256) for _ in range(p)], o))
    return reqs


def run_engine(path: str, reqs, max_num_seqs: int, max_num_batched_tokens: int):
    engine = LLMEngine(EngineConfig(model=path, max_num_seqs=max_num_seqs,
                                    max_num_batched_tokens=max_num_batched_tokens))
    params = [SamplingParams(max_tokens=o, temperature=0.0, ignore_eos=True) for _, o in reqs]
    engine.generate([reqs[0][0]], params[0])  # warm-up
    t = time.perf_counter()
    outs = engine.generate([p for p, _ in reqs], params)
    elapsed = time.perf_counter() - t
    return elapsed, [o.output_token_ids for o in outs], len(engine.iteration_records)


def run_hf(path: str, reqs, batch_size: int, order: list[int]):
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    model.generation_config.eos_token_id = None
    outputs: dict[int, list[int]] = {}
    wasted = 0

    def gen(batch):
        width = max(len(reqs[i][0]) for i in batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for row, i in enumerate(batch):
            p = reqs[i][0]
            ids[row, width - len(p):] = torch.tensor(p)
            mask[row, width - len(p):] = 1
        n = max(reqs[i][1] for i in batch)
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                                 do_sample=False, pad_token_id=0)
        return out[:, width:], n

    gen([order[0]])  # warm-up
    t = time.perf_counter()
    for s in range(0, len(order), batch_size):
        batch = order[s:s + batch_size]
        out, n = gen(batch)
        for row, i in enumerate(batch):
            outputs[i] = out[row, :reqs[i][1]].tolist()
            wasted += n - reqs[i][1]
    elapsed = time.perf_counter() - t
    return elapsed, [outputs[i] for i in range(len(reqs))], wasted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--num-requests", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-num-seqs", type=int, default=32)
    ap.add_argument("--max-num-batched-tokens", type=int, default=1024)
    ap.add_argument("--hf-batch-sizes", default="16,32", help="comma-separated static batch sizes")
    ap.add_argument("--hf-sorted", action="store_true", help="also run HF on length-sorted batches (oracle)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    reqs = make_requests(args.num_requests, args.seed)
    num_out = sum(o for _, o in reqs)
    num_prompt = sum(len(p) for p, _ in reqs)
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(build_model(BENCH_MODEL, seed=args.seed), build_tiny_tokenizer(), tmp)
        e_time, e_out, e_steps = run_engine(tmp, reqs, args.max_num_seqs, args.max_num_batched_tokens)
        rows = [("foundry engine", e_time, 0)]
        h_times, agree = [], []
        for b in [int(x) for x in args.hf_batch_sizes.split(",")]:
            h_time, h_out, h_waste = run_hf(tmp, reqs, b, list(range(len(reqs))))
            rows.append((f"transformers generate, batch {b}", h_time, h_waste))
            h_times.append(h_time)
            agree.append(sum(x == y for x, y in zip(e_out, h_out, strict=True)))
            if args.hf_sorted:
                order = sorted(range(len(reqs)), key=lambda i: reqs[i][1])
                s_time, _, s_waste = run_hf(tmp, reqs, b, order)
                rows.append((f"transformers generate, batch {b}, length-sorted (oracle)", s_time, s_waste))
    result = {
        "command": " ".join(["python", *sys.argv]),
        "model_params": BENCH_MODEL.num_params, "num_requests": len(reqs), "prompt_tokens": num_prompt,
        "output_tokens": num_out, "threads": args.threads, "engine_steps": e_steps,
        "greedy_outputs_identical": f"{min(agree)}/{len(reqs)}",
        "runs": [{"system": name, "seconds": round(t, 3), "output_tok_per_s": round(num_out / t, 1),
                  "wasted_decode_tokens": w} for name, t, w in rows],
        "speedup_vs_best_transformers_arrival_order": round(min(h_times) / e_time, 2),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"$ {result['command']}")
    print(f"model {BENCH_MODEL.num_params / 1e6:.1f}M params, {len(reqs)} requests, {num_prompt} prompt + "
          f"{num_out} output tokens, {args.threads} thread(s)")
    for r in result["runs"]:
        print(f"  {r['system']:<60} {r['seconds']:8.2f} s {r['output_tok_per_s']:9.1f} out tok/s"
              f"  (padding waste {r['wasted_decode_tokens']} tokens)")
    print(f"speedup vs the best arrival-order transformers run: "
          f"{result['speedup_vs_best_transformers_arrival_order']}x; "
          f"greedy outputs identical: {result['greedy_outputs_identical']}")


if __name__ == "__main__":
    main()
