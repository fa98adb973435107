"""SFT warm-up: teach the answer format by maximum likelihood before RL (sparse rewards from scratch stall).

Cross-entropy on the answer's tokens and EOS given the prompt, prompts drawn fresh each step.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import torch

from foundry.llm.models.llama import LlamaForCausalLM
from foundry.llm.tokenizer import Tokenizer
from foundry.rl.model import token_logprobs
from foundry.rl.tasks import Task


def encode_answer(tokenizer: Tokenizer, answer: str) -> list[int]:
    return tokenizer.encode(answer, add_special_tokens=False) + [tokenizer.eos_token_id]


def sft(model: LlamaForCausalLM, tokenizer: Tokenizer, task: Task, steps: int, batch: int = 32,
        lr: float = 3e-3, seed: int = 0, on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """Train `model` in place for `steps` steps; returns the loss of each step (mean nats per token)."""
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    model.train()
    losses = []
    for step in range(steps):
        prompts = [task.sample(rng) for _ in range(batch)]
        p_ids = [tokenizer.encode(p.text, add_special_tokens=False) for p in prompts]
        a_ids = [encode_answer(tokenizer, p.answer) for p in prompts]
        for g in opt.param_groups:  # linear decay to 10 %: the last steps settle
            g["lr"] = lr * (1 - 0.9 * step / max(1, steps))
        lps = token_logprobs(model, p_ids, a_ids)
        loss = -torch.cat(lps).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    model.eval()
    return losses
