"""PPO's pieces beside GRPO's: generalised advantage estimation from a critic and the clipped value loss.

The reward is terminal (the task scores the whole answer), so with values V_0..V_{T-1} of the states
before each token:

    delta_t = gamma * V_{t+1} - V_t            (t < T-1),     delta_{T-1} = R - V_{T-1}
    A_t     = sum_k (gamma * lam)^k delta_{t+k}              returns_t = A_t + V_t

Advantages are not whitened over the batch: whitening needs the whole batch, which a streamed trainer
does not have until the end; without it the streamed update stays exactly the batch one.
"""

from __future__ import annotations

import torch


def gae(values: torch.Tensor, reward: float, gamma: float = 1.0, lam: float = 0.95
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages [T], returns [T]) of one sample from its detached values [T] and terminal reward."""
    t_len = values.shape[0]
    next_values = torch.cat([values[1:] * gamma, values.new_zeros(1)])
    deltas = next_values - values
    deltas[-1] = deltas[-1] + reward
    adv = torch.zeros_like(values)
    running = values.new_zeros(())
    for t in range(t_len - 1, -1, -1):
        running = deltas[t] + gamma * lam * running
        adv[t] = running
    return adv, adv + values


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip: float
               ) -> torch.Tensor:
    """Summed clipped value loss 0.5 * max((V - R)^2, (V_old + clip(V - V_old) - R)^2)."""
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return 0.5 * torch.maximum((values - returns) ** 2, (clipped - returns) ** 2).sum()
