"""Incremental detokenization with stop strings and safe text deltas.

Token ids are decoded through a short sliding window so that a multi-byte character split across
tokens is emitted only once complete. A text delta never contains any part of a matched stop
string: text that could still be the start of a stop string is held back until it cannot be.
"""

from __future__ import annotations

from foundry.llm.tokenizer import Tokenizer

PROMPT_CONTEXT = 6  # prompt tokens kept as decoding context (spacing of the first output token)


class IncrementalDetokenizer:
    def __init__(self, tokenizer: Tokenizer, prompt_ids: list[int], stop: list[str]) -> None:
        self.tokenizer = tokenizer
        self.ids = list(prompt_ids[-PROMPT_CONTEXT:])
        self.prefix_offset = 0
        self.read_offset = len(self.ids)
        self.stop = stop
        self.max_stop_len = max((len(s) for s in stop), default=0)
        self.text = ""  # decoded output text (cut before a matched stop string)
        self.num_emitted = 0  # characters of `text` already handed out
        self.stopped = False

    def add(self, token_id: int) -> None:
        """Append one output token; sets `stopped` when a stop string appears."""
        self.ids.append(token_id)
        prefix = self.tokenizer.decode(self.ids[self.prefix_offset:self.read_offset])
        full = self.tokenizer.decode(self.ids[self.prefix_offset:])
        if len(full) > len(prefix) and not full.endswith("\ufffd"):
            self._extend(full[len(prefix):])
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)

    def flush(self) -> None:
        """At the end: emit whatever bytes are pending, even as replacement characters."""
        if self.read_offset < len(self.ids) and not self.stopped:
            prefix = self.tokenizer.decode(self.ids[self.prefix_offset:self.read_offset])
            full = self.tokenizer.decode(self.ids[self.prefix_offset:])
            self._extend(full[len(prefix):])
            self.read_offset = len(self.ids)

    def _extend(self, delta: str) -> None:
        if self.stopped or not delta:
            return
        old = len(self.text)
        self.text += delta
        if not self.stop:
            return
        window = max(0, old - self.max_stop_len + 1)
        hits = [i for s in self.stop if (i := self.text.find(s, window)) >= 0]
        if hits:
            self.text = self.text[:min(hits)]
            self.stopped = True

    def take_delta(self, finished: bool) -> str:
        """New text safe to show: everything, less a tail that may still begin a stop string."""
        end = len(self.text)
        if not finished and self.stop:
            for k in range(min(self.max_stop_len - 1, end), 0, -1):
                tail = self.text[end - k:]
                if any(s.startswith(tail) for s in self.stop):
                    end -= k
                    break
        delta = self.text[self.num_emitted:end]
        self.num_emitted = max(self.num_emitted, end)
        return delta

    @property
    def emitted_text(self) -> str:
        return self.text[:self.num_emitted]
