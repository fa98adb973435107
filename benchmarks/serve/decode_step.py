"""Decode-step time vs batch size: one engine step where every request decodes one token.

For each batch size B, B requests with `--context` prompt tokens are prefilled, then `--steps`
pure-decode steps are timed (median of the engine's own iteration records: whole step and model
execution). Same tiny Llama checkpoint as `throughput.py` unless `--model` names another.

    python benchmarks/serve/decode_step.py [--batch-sizes 1,2,4,8,16,32,64] [--context 128] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile

import torch

from foundry.llm import build_model, build_tiny_tokenizer, save_checkpoint
from foundry.serve import EngineConfig, LLMEngine, SamplingParams

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from throughput import BENCH_MODEL  # noqa: E402


def measure(path: str, batch: int, context: int, steps: int) -> dict:
    engine = LLMEngine(EngineConfig(model=path, max_num_seqs=batch, max_num_batched_tokens=max(1024, context),
                                    num_device_blocks=batch * (-(-(context + steps + 2) // 16)) + 1))
    params = SamplingParams(max_tokens=steps + 2, temperature=0.0, ignore_eos=True)
    for i in range(batch):
        engine.add_request(f"r{i}", [(7 * i + j) % 256 for j in range(context)], params)
    while any(r.num_prefill_tokens for r in engine.iteration_records[-1:]) or not engine.iteration_records:
        engine.step()  # prefill (and the first decode)
    start = len(engine.iteration_records)
    for _ in range(steps):
        engine.step()
    recs = [r for r in engine.iteration_records[start:] if r.num_decode_tokens == batch]
    step_s = statistics.median(r.elapsed for r in recs)
    exec_s = statistics.median(r.execute_time for r in recs)
    return {"batch": batch, "context": context, "steps": len(recs), "step_ms": round(step_s * 1e3, 2),
            "execute_ms": round(exec_s * 1e3, 2), "tokens_per_s": round(batch / step_s, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-sizes", default="1,2,4,8,16,32,64")
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--model", default=None, help="checkpoint dir or 'foundry-tiny' (default: bench model)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model
        if path is None:
            save_checkpoint(build_model(BENCH_MODEL, seed=0), build_tiny_tokenizer(), tmp)
            path = tmp
        rows = [measure(path, b, args.context, args.steps) for b in sizes]
    if args.json:
        print(json.dumps({"command": " ".join(["python", *sys.argv]), "rows": rows}, indent=2))
        return
    print(f"$ python {' '.join(sys.argv)}")
    print(f"{'batch':>6} {'step ms':>9} {'exec ms':>9} {'tok/s':>9}")
    for r in rows:
        print(f"{r['batch']:>6} {r['step_ms']:>9.2f} {r['execute_ms']:>9.2f} {r['tokens_per_s']:>9.1f}")


if __name__ == "__main__":
    main()
