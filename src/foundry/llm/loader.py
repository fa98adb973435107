"""Build a model and tokenizer from a built-in name or a local Hugging Face checkpoint directory.

Built in: `foundry-tiny` (random weights, made in memory) and the trained `foundry-small` and
`foundry-small-draft` (checkpoints shipped in `foundry/llm/checkpoints/`, made by `foundry.llm.pretrain`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from foundry.llm.config import ModelConfig
from foundry.llm.models.llama import LlamaForCausalLM
from foundry.llm.tokenizer import Tokenizer, build_tiny_tokenizer

TINY_NAME = "foundry-tiny"
CHECKPOINTS = Path(__file__).parent / "checkpoints"
SHIPPED = ("foundry-small", "foundry-small-draft")  # trained on the Python standard library (docs/engine.md)


def init_tiny_weights(model: LlamaForCausalLM, seed: int = 0) -> None:
    """Deterministic random weights from `seed` (meaningless text; for systems work only)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif name.endswith(".bias"):
                p.zero_()
            else:
                std = 1.0 if "embed_tokens" in name else 0.08
                p.copy_(torch.randn(p.shape, generator=gen) * std)


def read_json_object(file: Path) -> dict[str, Any]:
    """A checkpoint's JSON file as a dict; anything else is a ``ValueError`` naming the file."""
    try:
        data = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"model: {file} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"model: {file} holds a JSON {type(data).__name__}, expected an object")
    return data


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    index = path / "model.safetensors.index.json"
    if index.exists():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        files = sorted(p.name for p in path.glob("*.safetensors"))
    if not files:
        raise ValueError(f"model: no *.safetensors files in {path}")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(path / f)))
    return state


def build_model(cfg: ModelConfig, seed: int = 0) -> LlamaForCausalLM:
    """A model of any shape with foundry-tiny's deterministic random weights."""
    model = LlamaForCausalLM(cfg)
    init_tiny_weights(model, seed)
    return model


def load_model(name_or_path: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
               seed: int = 0) -> tuple[LlamaForCausalLM, Tokenizer, str]:
    """Returns (model in eval mode, tokenizer, model name)."""
    if name_or_path == TINY_NAME:
        model = build_model(ModelConfig.from_name(TINY_NAME), seed)
        tokenizer = build_tiny_tokenizer()
        name = TINY_NAME
    else:
        path = CHECKPOINTS / name_or_path if name_or_path in SHIPPED else Path(name_or_path)
        if not path.is_dir():
            builtin = ", ".join((TINY_NAME, *SHIPPED))
            raise ValueError(f"model: {name_or_path!r} is neither a built-in model ({builtin}) nor a "
                             "checkpoint directory")
        config_file = path / "config.json"
        if not config_file.is_file():
            raise ValueError(f"model: {path} has no config.json (is it a Hugging Face checkpoint directory?)")
        hf = read_json_object(config_file)
        try:
            cfg = ModelConfig.from_hf(hf)
        except (TypeError, ValueError) as e:  # TypeError: a field of the wrong type
            raise ValueError(f"model: {config_file}: {e}") from None
        model = LlamaForCausalLM(cfg)
        model.load_weights(load_state_dict(path))
        eos = cfg.eos_token_id
        gen_cfg = path / "generation_config.json"
        if eos is None and gen_cfg.exists():
            eos = read_json_object(gen_cfg).get("eos_token_id")
            eos = eos[0] if isinstance(eos, list) and eos else eos
        tokenizer = Tokenizer.from_dir(path, eos, cfg.bos_token_id)
        name = name_or_path if name_or_path in SHIPPED else path.resolve().name
    return model.to(device=device, dtype=dtype).eval(), tokenizer, name


def check_in_memory_model(model: LlamaForCausalLM, device: torch.device, dtype: torch.dtype) -> None:
    """A handed-over model must already sit where the config says: moving it would copy its weights."""
    for name, p in model.named_parameters():
        on_device = p.device.type == device.type and device.index in (None, p.device.index)
        if not on_device or p.dtype != dtype:
            raise ValueError(f"model: parameter {name!r} is {p.dtype} on {p.device}, the config says {dtype} "
                             f"on {device}; move or cast the model first (the engine never copies it)")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device: {name!r} requested but CUDA is not available")
    return torch.device(name)
