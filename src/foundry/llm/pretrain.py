"""Pretrain foundry-small (and its draft) on the Python standard library's source, on a CPU.

Random weights make perplexity, quantisation error and a draft model's acceptance meaningless, so the
engine's built-in small models are trained, from scratch, on a corpus every machine with Python has
and whose licence (PSF) allows it: the `.py` files of this interpreter's standard library (tests,
IDLE and site-packages left out). Files are sorted by path; every 20th is held out for perplexity.

    python -m foundry.llm.pretrain --out out/foundry-small --size small --minutes 45
    python -m foundry.llm.pretrain --out out/foundry-small-draft --size draft --minutes 12 \\
        --tokenizer out/foundry-small

Read top to bottom: corpus -> tokenizer (byte-level BPE, trained here unless --tokenizer gives one,
so a draft shares its target's) -> batches of random windows -> AdamW with warm-up and cosine decay
over a step count fixed from the first steps' speed and the time budget -> held-out perplexity ->
a checkpoint in float16 (safetensors, config.json, tokenizer.json, tokenizer_config.json, train.json).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sysconfig
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from foundry.llm.checkpoint import save_checkpoint
from foundry.llm.config import ModelConfig
from foundry.llm.layers.attention import AttentionMetadata
from foundry.llm.loader import load_model
from foundry.llm.models.llama import LlamaForCausalLM
from foundry.llm.tokenizer import Tokenizer

SPECIALS = ["<|bos|>", "<|eos|>", "<|system|>", "<|user|>", "<|assistant|>"]
SKIP_DIRS = {"test", "tests", "idlelib", "site-packages", "dist-packages", "lib2to3", "__pycache__"}
HELD_OUT_EVERY = 20
SIZES = {  # (hidden, layers, heads, kv heads, intermediate); vocab from the tokenizer, embeddings tied
    "small": (256, 8, 8, 4, 768),  # ~7.4M parameters
    "draft": (128, 4, 4, 2, 384),  # ~1.3M parameters
}


def corpus_files(root: Path | None = None) -> list[Path]:
    root = root or Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if not SKIP_DIRS & set(p.relative_to(root).parts))


def split(files: list[Path]) -> tuple[list[Path], list[Path]]:
    held = [f for i, f in enumerate(files) if i % HELD_OUT_EVERY == 0]
    return [f for i, f in enumerate(files) if i % HELD_OUT_EVERY != 0], held


def read(files: list[Path]) -> list[str]:
    return [f.read_text(encoding="utf-8", errors="replace") for f in files]


def train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return Tokenizer(tok, eos_token_id=tok.token_to_id("<|eos|>"), bos_token_id=tok.token_to_id("<|bos|>"))


def encode(tokenizer: Tokenizer, texts: list[str]) -> torch.Tensor:
    """One stream: each file's tokens followed by EOS."""
    ids: list[int] = []
    for t in texts:
        ids += tokenizer.encode(t, add_special_tokens=False) + [tokenizer.eos_token_id]
    return torch.tensor(ids, dtype=torch.long)


def held_out_stream(tokenizer: Tokenizer) -> torch.Tensor:
    """The held-out files as one token stream (for perplexity, and benchmark prompts nobody trained on)."""
    return encode(tokenizer, read(split(corpus_files())[1]))


def model_config(size: str, vocab_size: int, tokenizer: Tokenizer, context: int) -> ModelConfig:
    hidden, layers, heads, kv, inter = SIZES[size]
    return ModelConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=inter, num_layers=layers,
                       num_heads=heads, num_kv_heads=kv, max_position_embeddings=context,
                       tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id)


def loss_on(model: LlamaForCausalLM, batch: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of [B, W+1] windows (the engine's model, dense causal attention)."""
    b, w = batch.shape[0], batch.shape[1] - 1
    positions = torch.arange(w).repeat(b)
    hidden = model(batch[:, :-1].reshape(-1), positions, None, AttentionMetadata.dense([w] * b))
    return F.cross_entropy(model.compute_logits(hidden), batch[:, 1:].reshape(-1))


@torch.no_grad()
def perplexity(model: LlamaForCausalLM, stream: torch.Tensor, window: int = 256,
               max_windows: int = 200) -> float:
    """exp(mean cross-entropy) over consecutive non-overlapping windows of a token stream."""
    n = min(max_windows, (len(stream) - 1) // window)
    total = 0.0
    for i in range(n):
        total += loss_on(model, stream[i * window:(i + 1) * window + 1][None]).item()
    return math.exp(total / n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--minutes", type=float, default=45.0, help="training time budget")
    ap.add_argument("--tokenizer", type=Path, help="reuse this checkpoint's tokenizer (a draft's target)")
    ap.add_argument("--init", type=Path, help="continue from this checkpoint (its weights, shape and "
                    "tokenizer; a fresh optimizer and schedule); its train.json's steps are counted in")
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--context", type=int, default=1024, help="positions of the model")
    ap.add_argument("--window", type=int, default=256, help="training sequence length")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    t0 = time.monotonic()

    train_files, held_files = split(corpus_files())
    train_texts, held_texts = read(train_files), read(held_files)
    init, prior = None, {"steps": 0, "tokens_seen": 0, "minutes": 0.0}
    if args.init:
        init, tokenizer, _ = load_model(str(args.init))
        if (args.init / "train.json").is_file():
            prior = {k: json.loads((args.init / "train.json").read_text())[k] for k in prior}
    elif args.tokenizer:
        tokenizer = Tokenizer.from_dir(args.tokenizer, None, None)
    else:
        tokenizer = train_tokenizer(train_texts, args.vocab_size)
    train_ids, held_ids = encode(tokenizer, train_texts), encode(tokenizer, held_texts)
    print(f"corpus: {len(train_files)} train / {len(held_files)} held-out files, {len(train_ids):,} / "
          f"{len(held_ids):,} tokens, vocab {tokenizer.vocab_size}, {time.monotonic() - t0:.0f} s",
          flush=True)

    if init is not None:
        model = init.float()
    else:
        model = LlamaForCausalLM(model_config(args.size, tokenizer.vocab_size, tokenizer, args.context))
        for p in model.parameters():  # small-init (GPT-2 style); norms stay 1
            if p.dim() > 1:
                torch.nn.init.normal_(p, std=0.02)
    num_params = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0}],
                            lr=args.lr, betas=(0.9, 0.95))

    def batch() -> torch.Tensor:
        starts = [rng.randrange(len(train_ids) - args.window - 1) for _ in range(args.batch)]
        return torch.stack([train_ids[s:s + args.window + 1] for s in starts])

    budget = args.minutes * 60
    train_start, step, total_steps, log = time.monotonic(), 0, None, []
    model.train()
    while True:
        elapsed = time.monotonic() - train_start
        if total_steps is None and step == 10:  # fix the schedule's length from the measured speed
            total_steps = max(20, int(budget / (elapsed / step)))
            print(f"{elapsed / step:.2f} s/step: {total_steps} steps in {args.minutes:g} min", flush=True)
        if total_steps is not None and step >= total_steps:
            break
        warmup, horizon = 50, total_steps or 10**9
        cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, step / horizon)))
        lr = args.lr * min(1.0, (step + 1) / warmup) * cosine
        for g in opt.param_groups:
            g["lr"] = max(lr, args.lr * 0.02)
        loss = loss_on(model, batch())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 50 == 0 or step == 1:
            log.append({"step": step, "loss": round(loss.item(), 4), "lr": lr, "s": round(elapsed, 1)})
            print(json.dumps(log[-1]), flush=True)
    model.eval()
    ppl = perplexity(model, held_ids, args.window)
    print(f"held-out perplexity {ppl:.3f} after {step} steps ({step * args.batch * args.window:,} tokens)",
          flush=True)
    save_checkpoint(model.to(torch.float16), tokenizer, args.out)
    (args.out / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<|bos|>", "eos_token": "<|eos|>", "add_bos_token": False}, indent=1))
    (args.out / "train.json").write_text(json.dumps({
        "size": args.size, "num_params": num_params, "steps": prior["steps"] + step,
        "tokens_seen": prior["tokens_seen"] + step * args.batch * args.window,
        "init": None if args.init is None else {"from": str(args.init), **prior},
        "train_tokens": len(train_ids), "held_out_tokens": len(held_ids), "held_out_perplexity": ppl,
        "held_out_perplexity_window": args.window, "minutes": prior["minutes"] + args.minutes,
        "threads": args.threads,
        "wall_s": time.monotonic() - t0, "args": {k: str(v) for k, v in vars(args).items()}, "log": log,
        "corpus": f"Python {sysconfig.get_python_version()} standard library .py files (PSF licence), "
                  f"minus {sorted(SKIP_DIRS)}; every {HELD_OUT_EVERY}th file (sorted by path) held out",
    }, indent=1))
    print(f"wrote {args.out} ({num_params:,} parameters, float16)", flush=True)


if __name__ == "__main__":
    main()
