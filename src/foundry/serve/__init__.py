"""foundry.serve: a paged-KV serving engine with pluggable scheduling policies.

`from foundry.serve import LLMEngine, EngineConfig, SamplingParams, RequestOutput`. The engine
class loads lazily so that policy and accounting code (`foundry.serve.policies`,
`foundry.serve.block_manager`, `foundry.serve.sequence`) import without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from foundry.serve.config import EngineConfig
from foundry.serve.outputs import EngineStats, IterationRecord, RequestOutput, TokenLogprob
from foundry.serve.sampling_params import SamplingParams

if TYPE_CHECKING:
    from foundry.serve.engine import LLMEngine

__all__ = ["EngineConfig", "EngineStats", "IterationRecord", "LLMEngine", "RequestOutput", "SamplingParams",
           "TokenLogprob"]


def __getattr__(name: str) -> Any:
    if name == "LLMEngine":
        from foundry.serve.engine import LLMEngine

        return LLMEngine
    raise AttributeError(f"module 'foundry.serve' has no attribute {name!r}")
