"""Weight-only int8 / int4 against float32 on foundry-small: bytes, logit error, perplexity, speed.

Perplexity is on the held-out standard-library files of `foundry.llm.pretrain` (never trained on),
windows of 256 tokens; the logit error is the largest |logit difference| over those windows' positions;
speed is the engine's output tokens/s generating greedily for a batch of prompts (same prompts, same
lengths, one thread). Every number is measured in this run, side by side.

    OMP_NUM_THREADS=1 python benchmarks/serve/quantization.py [--model foundry-small] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from foundry.llm.layers.attention import AttentionMetadata
from foundry.llm.loader import load_model
from foundry.llm.pretrain import held_out_stream
from foundry.llm.quantize import linear_weight_bytes, quantize_model
from foundry.serve import EngineConfig, LLMEngine, SamplingParams


@torch.no_grad()
def logits_and_ppl(model, stream: torch.Tensor, window: int,
                   windows: int) -> tuple[list[torch.Tensor], float]:
    outs, nll = [], 0.0
    for i in range(windows):
        chunk = stream[i * window:(i + 1) * window + 1]
        hidden = model(chunk[:-1], torch.arange(window), None, AttentionMetadata.dense([window]))
        logits = model.compute_logits(hidden)
        outs.append(logits)
        nll += torch.nn.functional.cross_entropy(logits, chunk[1:]).item()
    return outs, math.exp(nll / windows)


def tokens_per_s(model_name: str, quantization: str | None, prompts: list[list[int]],
                 max_tokens: int) -> float:
    engine = LLMEngine(EngineConfig(model=model_name, quantization=quantization, max_num_seqs=len(prompts)))
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    engine.generate(prompts[:1], SamplingParams(max_tokens=2, temperature=0.0))  # warm-up
    start = time.perf_counter()
    engine.generate(prompts, params)
    return len(prompts) * max_tokens / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="foundry-small")
    ap.add_argument("--windows", type=int, default=200, help="held-out windows of 256 tokens (as train.json)")
    ap.add_argument("--batch", type=int, default=8, help="prompts generated at once for the speed test")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, tokenizer, _ = load_model(args.model)
    stream = held_out_stream(tokenizer)
    ref_logits, ppl = logits_and_ppl(model, stream, 256, args.windows)
    result = {"model": args.model, "ppl_fp32": ppl, "held_out_tokens_scored": args.windows * 256}
    fp32_bytes = linear_weight_bytes(model)
    prompts = [stream[i * 97:i * 97 + 32].tolist() for i in range(args.batch)]
    speed = {"fp32": tokens_per_s(args.model, None, prompts, args.max_tokens)}
    for mode in ("int8", "int4"):
        quant = quantize_model(load_model(args.model)[0], mode)
        logits, ppl = logits_and_ppl(quant, stream, 256, args.windows)
        result[f"ppl_{mode}"] = ppl
        pairs = zip(ref_logits, logits, strict=True)
        result[f"max_abs_logit_err_{mode}"] = max((a - b).abs().max().item() for a, b in pairs)
        result[f"weight_bytes_ratio_{mode}"] = linear_weight_bytes(quant) / fp32_bytes
        speed[mode] = tokens_per_s(args.model, mode, prompts, args.max_tokens)
    result["max_abs_logit_err"] = result["max_abs_logit_err_int8"]
    result["weight_bytes_ratio"] = result["weight_bytes_ratio_int8"]
    result["tok_per_s"] = speed
    result["tok_per_s_ratio"] = speed["int8"] / speed["fp32"]
    result["tok_per_s_ratio_int4"] = speed["int4"] / speed["fp32"]
    result["ppl_int8_vs_fp32"] = result["ppl_int8"] / result["ppl_fp32"] - 1
    if args.json:
        print(json.dumps(result))
        return
    for k, v in result.items():
        print(f"{k:>28}: {v}")


if __name__ == "__main__":
    main()
