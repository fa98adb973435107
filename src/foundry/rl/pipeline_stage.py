"""A contiguous run of decoder layers as one pipeline stage (RLHFuse's actor and critic pipelines).

`split_stages(model, n)` cuts a policy (`LlamaForCausalLM`) or a critic (`Critic`) into `n` stages that
share the model's parameters (no copy): the first stage embeds tokens, every stage runs its layers, the
last one applies the final norm and the head (the LM head's log-probabilities of the completion tokens,
or the value head). A stage's input and output are the hidden states `[T, hidden]` of the packed batch,
which is what crosses from one pipeline rank to the next (forward), with their gradient going back
(backward). Run stage by stage — each stage's output detached and re-entered as the next stage's leaf
input, gradients handed back by `backward(grad)` — the parameters get exactly the gradients of the whole
model (tests: allclose 1e-5), which is the property the fused schedules rely on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from foundry.llm.layers import AttentionMetadata
from foundry.llm.models.llama import LlamaForCausalLM
from foundry.rl.critic import Critic


@dataclass(frozen=True)
class StageInputs:
    """What every stage of one micro-batch needs besides the activations: packed by `rl.model.pack`."""

    ids: torch.Tensor  # [T]
    positions: torch.Tensor  # [T]
    meta: AttentionMetadata
    rows: torch.Tensor  # the rows whose outputs predict completion tokens
    targets: torch.Tensor  # the completion tokens, in row order


class PipelineStage(nn.Module):
    def __init__(self, model: LlamaForCausalLM | Critic, start: int, stop: int) -> None:
        super().__init__()
        body = model.model
        if not 0 <= start < stop <= len(body.layers):
            raise ValueError(f"stage: need 0 <= start < stop <= {len(body.layers)}, got {start}..{stop}")
        self.first, self.last = start == 0, stop == len(body.layers)
        self.layers = nn.ModuleList(body.layers[start:stop])  # the same modules: parameters are shared
        self.rotary = body.rotary
        self.embed_tokens = body.embed_tokens if self.first else None
        self.norm = body.norm if self.last else None
        self.lm_head = model.lm_head if self.last and isinstance(model, LlamaForCausalLM) else None
        self.value_head = model.value_head if self.last and isinstance(model, Critic) else None

    def forward(self, x: torch.Tensor | None, inp: StageInputs) -> torch.Tensor:
        """Hidden states in (None for the first stage), hidden states out; the last stage returns the
        completion tokens' log-probabilities (policy) or values (critic), one per row of `inp.rows`."""
        if self.first:
            x = self.embed_tokens(inp.ids)
        assert x is not None, "a stage after the first needs the previous stage's hidden states"
        cos, sin = self.rotary(inp.positions)
        for layer in self.layers:
            x = layer(x, cos, sin, None, inp.meta)
        if not self.last:
            return x
        h = self.norm(x)[inp.rows]
        if self.value_head is not None:
            return self.value_head(h)[:, 0]
        logits = self.lm_head(h).float()
        return torch.log_softmax(logits, dim=-1).gather(1, inp.targets[:, None])[:, 0]


def split_stages(model: LlamaForCausalLM | Critic, n: int) -> list[PipelineStage]:
    """`n` contiguous stages, layer counts as even as possible (earlier stages take the remainder)."""
    num_layers = len(model.model.layers)
    if not 1 <= n <= num_layers:
        raise ValueError(f"stages: need 1..{num_layers} stages for {num_layers} layers, got {n}")
    bounds = [num_layers * i // n for i in range(n + 1)]
    return [PipelineStage(model, a, b) for a, b in zip(bounds, bounds[1:], strict=False)]


def run_stages(stages: list[PipelineStage], inp: StageInputs,
               loss_fn: object) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One micro-batch through the stages as a pipeline would: forward stage by stage over detached
    boundaries, then backward from the last stage, each stage handing its input's gradient to the one
    before. Returns (loss, the activations that crossed each boundary)."""
    boundary: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []
    x: torch.Tensor | None = None
    for stage in stages:
        if x is not None:
            x = x.detach().requires_grad_(True)  # what the next rank receives
            boundary.append(x)
        x = stage(x, inp)
        outputs.append(x)
    loss = loss_fn(outputs[-1])  # type: ignore[operator]
    loss.backward()
    for out, received in zip(reversed(outputs[:-1]), reversed(boundary), strict=True):
        out.backward(received.grad)  # the gradient the next rank sends back
    return loss.detach(), boundary
