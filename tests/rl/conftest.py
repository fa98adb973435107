"""A tiny SFT-warmed policy shared by the RL tests (a few seconds to make, once per session)."""

from __future__ import annotations

import pytest
import torch

from foundry.rl.config import RLConfig
from foundry.rl.run import initial_policy


@pytest.fixture(scope="session")
def tiny_policy():
    torch.set_num_threads(1)
    config = RLConfig(hidden=32, layers=1, sft_steps=150, sft_batch=16)
    return initial_policy(config, log=lambda _: None)
