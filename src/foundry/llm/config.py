"""Model configuration for the Llama family (Llama 2/3, Qwen2), with named presets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    """Shape and numerics of a Llama-family decoder.

    `qkv_bias` covers Qwen2 (biases on q/k/v only); `o_bias` is Llama's `attention_bias`, which
    also adds one to the output projection. `rope_scaling` holds a Llama-3 style dict
    (`factor`, `low_freq_factor`, `high_freq_factor`, `original_max_position_embeddings`) or None.
    """

    vocab_size: int = 512
    hidden_size: int = 128
    intermediate_size: int = 352
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int | None = None
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.num_heads % self.num_kv_heads != 0:
            raise ValueError(
                f"num_kv_heads: must divide num_heads ({self.num_heads}), got {self.num_kv_heads}"
            )
        if self.head_dim is None:
            if self.hidden_size % self.num_heads != 0:
                raise ValueError(f"hidden_size: must be a multiple of num_heads, got {self.hidden_size}")
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)

    @property
    def num_params(self) -> int:
        d, f, v = self.hidden_size, self.intermediate_size, self.vocab_size
        hd = self.head_dim
        attn = d * hd * (self.num_heads * 2 + self.num_kv_heads * 2)
        layer = attn + 3 * d * f + 2 * d
        head = 0 if self.tie_word_embeddings else v * d
        return v * d + self.num_layers * layer + d + head

    @classmethod
    def from_name(cls, name: str) -> ModelConfig:
        if name not in PRESETS:
            raise ValueError(f"model: unknown preset {name!r}; known: {sorted(PRESETS)}")
        return PRESETS[name]

    @classmethod
    def from_hf(cls, hf: dict[str, Any]) -> ModelConfig:
        """Build from a Hugging Face `config.json` dict (Llama or Qwen2; old or new rope keys)."""
        archs = hf.get("architectures") or []
        arch = archs[0] if archs else {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}.get(
            hf.get("model_type", ""), ""
        )
        if arch not in SUPPORTED_ARCHITECTURES:
            raise ValueError(
                f"architectures: {arch or hf.get('model_type')!r} is not supported; "
                f"supported: {sorted(SUPPORTED_ARCHITECTURES)}"
            )
        if hf.get("hidden_act", "silu") != "silu":
            raise ValueError(f"hidden_act: only 'silu' is supported, got {hf['hidden_act']!r}")
        if hf.get("use_sliding_window", False):
            raise ValueError("use_sliding_window: sliding-window attention is not supported")
        missing = [k for k in HF_REQUIRED_FIELDS if k not in hf]
        if missing:
            raise ValueError(f"missing field(s) {', '.join(missing)} (a Llama or Qwen2 config.json has "
                             f"{', '.join(HF_REQUIRED_FIELDS)})")
        bad = [k for k in HF_REQUIRED_FIELDS if not (isinstance(hf[k], int) and hf[k] > 0)]
        if bad:
            raise ValueError(f"{bad[0]}: expected a positive integer, got {hf[bad[0]]!r}")
        rope = dict(hf.get("rope_parameters") or {})
        rope_theta = float(rope.get("rope_theta", hf.get("rope_theta", 10000.0)))
        scaling = hf.get("rope_scaling") or (rope if rope.get("rope_type", "default") != "default" else None)
        if scaling is not None:
            kind = scaling.get("rope_type", scaling.get("type", "default"))
            if kind == "default":
                scaling = None
            elif kind != "llama3":
                raise ValueError(f"rope_scaling: only 'llama3' scaling is supported, got {kind!r}")
        eos = hf.get("eos_token_id")
        if isinstance(eos, list):
            eos = eos[0] if eos else None
        is_qwen2 = arch == "Qwen2ForCausalLM"
        attention_bias = bool(hf.get("attention_bias", False))
        return cls(
            vocab_size=hf["vocab_size"],
            hidden_size=hf["hidden_size"],
            intermediate_size=hf["intermediate_size"],
            num_layers=hf["num_hidden_layers"],
            num_heads=hf["num_attention_heads"],
            num_kv_heads=hf.get("num_key_value_heads") or hf["num_attention_heads"],
            head_dim=hf.get("head_dim"),
            rope_theta=rope_theta,
            rope_scaling=dict(scaling) if scaling else None,
            rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            max_position_embeddings=int(hf.get("max_position_embeddings", 2048)),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
            qkv_bias=True if is_qwen2 else attention_bias,
            o_bias=False if is_qwen2 else attention_bias,
            mlp_bias=bool(hf.get("mlp_bias", False)),
            bos_token_id=hf.get("bos_token_id"),
            eos_token_id=eos,
            extra={"architecture": arch},
        )


SUPPORTED_ARCHITECTURES = {"LlamaForCausalLM", "Qwen2ForCausalLM"}
HF_REQUIRED_FIELDS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"
)

# Named presets. foundry-tiny is the embedded default (random weights, meaningless text); the others
# record published shapes so cost models and tests can build them without a checkpoint.
PRESETS: dict[str, ModelConfig] = {
    "foundry-tiny": ModelConfig(
        vocab_size=384, hidden_size=128, intermediate_size=352, num_layers=4, num_heads=4,
        num_kv_heads=2, max_position_embeddings=2048, bos_token_id=256,
        eos_token_id=257,
    ),
    "llama-3-8b": ModelConfig(
        vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_layers=32, num_heads=32,
        num_kv_heads=8, rope_theta=500000.0, rms_norm_eps=1e-5, max_position_embeddings=8192,
    ),
    "llama-2-7b": ModelConfig(
        vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_layers=32, num_heads=32,
        num_kv_heads=32, rms_norm_eps=1e-5, max_position_embeddings=4096,
    ),
    "qwen2-0.5b": ModelConfig(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_layers=24, num_heads=14,
        num_kv_heads=2, rope_theta=1000000.0, max_position_embeddings=32768, tie_word_embeddings=True,
        qkv_bias=True,
    ),
}
