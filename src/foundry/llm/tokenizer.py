"""A thin tokenizer wrapper over `tokenizers`, plus the byte-level tokenizer of foundry-tiny."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers

# foundry-tiny's chat template: one role tag per message, then the assistant tag.
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
TINY_SPECIAL_TOKENS = ["<|bos|>", "<|eos|>", "<|system|>", "<|user|>", "<|assistant|>"]


class Tokenizer:
    """encode/decode, special ids and a chat template (rendered with jinja2)."""

    def __init__(self, tok: HFTokenizer, eos_token_id: int | None, bos_token_id: int | None = None,
                 chat_template: str | None = None, add_bos: bool = False) -> None:
        self._tok = tok
        self.eos_token_id = eos_token_id
        self.bos_token_id = bos_token_id
        self.chat_template = chat_template
        self.add_bos = add_bos

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids; special tokens (e.g. a Llama BOS) as the checkpoint's tokenizer adds them.

        A BOS already written by a chat template is not doubled.
        """
        ids = self._tok.encode(text, add_special_tokens=add_special_tokens).ids
        bos = self.bos_token_id
        if bos is not None and add_special_tokens:
            if self.add_bos and (not ids or ids[0] != bos):
                ids = [bos, *ids]
            if len(ids) >= 2 and ids[0] == ids[1] == bos:
                ids = ids[1:]
        return ids

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=True)

    def apply_chat_template(self, messages: list[dict[str, Any]], add_generation_prompt: bool = True) -> str:
        import jinja2

        for i, m in enumerate(messages):
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise ValueError(f"messages[{i}]: needs 'role' and 'content'")
        template = self.chat_template or TINY_CHAT_TEMPLATE
        env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise
        bos = self._tok.id_to_token(self.bos_token_id) if self.bos_token_id is not None else ""
        eos = self._tok.id_to_token(self.eos_token_id) if self.eos_token_id is not None else ""
        return env.from_string(template).render(
            messages=messages, add_generation_prompt=add_generation_prompt, bos_token=bos or "",
            eos_token=eos or "",
        )

    @classmethod
    def from_dir(cls, path: str | Path, eos_token_id: int | None, bos_token_id: int | None) -> Tokenizer:
        path = Path(path)
        file = path / "tokenizer.json"
        if not file.exists():
            raise ValueError(f"model: {path} has no tokenizer.json")
        tok = HFTokenizer.from_file(str(file))
        cfg: dict[str, Any] = {}
        if (path / "tokenizer_config.json").exists():
            cfg = json.loads((path / "tokenizer_config.json").read_text())

        def token_id(entry: Any) -> int | None:
            if isinstance(entry, dict):
                entry = entry.get("content")
            return tok.token_to_id(entry) if isinstance(entry, str) else None

        eos = eos_token_id if eos_token_id is not None else token_id(cfg.get("eos_token"))
        bos = bos_token_id if bos_token_id is not None else token_id(cfg.get("bos_token"))
        template = cfg.get("chat_template")
        if isinstance(template, list):  # named templates: take the default one
            template = next((t["template"] for t in template if t.get("name") == "default"), None)
        return cls(tok, eos, bos, template, add_bos=bool(cfg.get("add_bos_token", False)))


def prompt_token_ids(prompt: str | list[int], tokenizer: Tokenizer, vocab_size: int) -> list[int]:
    """A prompt as token ids: text encoded, or given ids checked against the vocabulary (a
    ``ValueError`` naming the field ``prompt`` otherwise)."""
    if isinstance(prompt, str):
        return tokenizer.encode(prompt)
    ids = list(prompt)
    bad = [t for t in ids if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < vocab_size]
    if bad:
        raise ValueError(f"prompt: token ids must be integers in [0, {vocab_size}), got {bad[:3]}")
    return ids


def _raise(message: str) -> None:
    raise ValueError(f"chat template: {message}")


def _byte_chars() -> list[str]:
    """The printable stand-in character for each byte 0..255 (the GPT-2 byte-level scheme)."""
    printable = set(range(33, 127)) | set(range(161, 173)) | set(range(174, 256))
    chars, extra = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def build_tiny_tokenizer() -> Tokenizer:
    """Byte-level tokenizer: ids 0..255 are bytes, 256.. the special tokens. Built in memory."""
    vocab = {c: i for i, c in enumerate(_byte_chars())}
    tok = HFTokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(TINY_SPECIAL_TOKENS)
    ids = {t: tok.token_to_id(t) for t in TINY_SPECIAL_TOKENS}
    return Tokenizer(tok, eos_token_id=ids["<|eos|>"], bos_token_id=ids["<|bos|>"],
                     chat_template=TINY_CHAT_TEMPLATE, add_bos=False)
