"""Building blocks of the Llama-family decoder, one per file."""

from foundry.llm.layers.attention import Attention, AttentionMetadata, DecodeGroup, paged_attention, write_kv
from foundry.llm.layers.mlp import SwiGLU
from foundry.llm.layers.rms_norm import RMSNorm
from foundry.llm.layers.rotary import RotaryEmbedding, apply_rotary

__all__ = [
    "Attention", "AttentionMetadata", "DecodeGroup", "RMSNorm", "RotaryEmbedding", "SwiGLU", "apply_rotary",
    "paged_attention", "write_kv",
]
