"""PPO's critic: the policy's model class with a value head, V(s_t) for every completion token's state.

Row t of a completion's values is the value of the state before token t (the same rows whose logits
predict token t in `token_logprobs`: both use `pack`), so advantages and logprobs line up token by token.
"""

from __future__ import annotations

import torch
from torch import nn

from foundry.llm.config import ModelConfig
from foundry.llm.models.llama import LlamaModel
from foundry.rl.model import pack


class Critic(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.model = LlamaModel(cfg)
        self.value_head = nn.Linear(cfg.hidden_size, 1)
        nn.init.zeros_(self.value_head.weight)  # starts at V = 0: the first advantages are the rewards
        nn.init.zeros_(self.value_head.bias)

    @classmethod
    def from_policy(cls, cfg: ModelConfig, policy_weights: dict[str, torch.Tensor]) -> Critic:
        """A critic whose body starts as the policy's (the usual initialisation without a reward model)."""
        critic = cls(cfg)
        body = {k.removeprefix("model."): v for k, v in policy_weights.items() if k.startswith("model.")}
        critic.model.load_state_dict(body, strict=False)
        return critic

    def values(self, prompts: list[list[int]], completions: list[list[int]]) -> list[torch.Tensor]:
        ids, positions, meta, rows = pack(prompts, completions)
        hidden = self.model(ids, positions, None, meta)
        v = self.value_head(hidden[rows])[:, 0]
        return list(v.split([len(c) for c in completions]))
