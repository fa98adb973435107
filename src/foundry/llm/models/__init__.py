"""Model families: one file per architecture family."""

from foundry.llm.models.llama import LlamaForCausalLM

__all__ = ["LlamaForCausalLM"]
