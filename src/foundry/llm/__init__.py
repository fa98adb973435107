"""foundry.llm: a Llama-family decoder (Llama, Qwen2) in plain PyTorch, and its loaders.

The model knows nothing of serving: it runs flat token batches over a KV cache described by
`AttentionMetadata`. `foundry.serve` builds the engine on it.
"""

from foundry.llm.checkpoint import save_checkpoint
from foundry.llm.config import PRESETS, ModelConfig
from foundry.llm.layers.attention import AttentionMetadata
from foundry.llm.loader import TINY_NAME, build_model, load_model
from foundry.llm.models.llama import LlamaForCausalLM
from foundry.llm.tokenizer import Tokenizer, build_tiny_tokenizer

__all__ = [
    "PRESETS", "TINY_NAME", "AttentionMetadata", "LlamaForCausalLM", "ModelConfig", "Tokenizer",
    "build_model", "build_tiny_tokenizer", "load_model", "save_checkpoint",
]
