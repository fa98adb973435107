"""GRPO's pieces, read top to bottom: group-relative advantages, then the clipped, token-level loss with
a KL penalty to a reference policy.

    A_i      = (r_i - mean(r_group)) / (std(r_group) + eps)         one advantage per sample
    ratio_t  = exp(log pi_theta(a_t) - log pi_behaviour(a_t))       per token
    loss_t   = -min(ratio_t A, clip(ratio_t, 1-eps_clip, 1+eps_clip) A) + beta * KL_t
    KL_t     = exp(ref_t - lp_t) - (ref_t - lp_t) - 1                 (the k3 estimator: >= 0, unbiased)

The loss is summed over tokens and divided by the batch's token count (token-level normalisation): a
streamed batch accumulates the sums as groups arrive and divides once, so its update is the batch one.
`log pi_behaviour` is the trainer's own recomputation under the weights of the version that sampled
each token (not the engine's reported logprob, which agrees with it to ~1e-6 but comes from another
kernel path).
"""

from __future__ import annotations

import torch

from foundry.rl.config import GRPOConfig


def group_advantages(rewards: torch.Tensor, scale: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """rewards [n] of one group -> advantages [n]; all zero when every sample scored the same."""
    centred = rewards - rewards.mean()
    return centred / (rewards.std(unbiased=False) + eps) if scale else centred


def token_loss(lp: torch.Tensor, old_lp: torch.Tensor, ref_lp: torch.Tensor | None,
               advantage: float | torch.Tensor, cfg: GRPOConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Summed (not averaged) loss over tokens (one sample's, or a micro-batch's with a per-token
    advantage), and its summed statistics."""
    ratio = torch.exp(lp - old_lp)
    surrogate = torch.minimum(ratio * advantage, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * advantage)
    loss = -surrogate
    kl = torch.zeros_like(lp)
    if ref_lp is not None and cfg.kl_coef > 0:
        d = ref_lp - lp
        kl = torch.exp(d) - d - 1
        loss = loss + cfg.kl_coef * kl
    clipped = ((ratio - 1).abs() > cfg.clip).float()
    return loss.sum(), {"kl": kl.sum().item(), "clipped": clipped.sum().item()}
