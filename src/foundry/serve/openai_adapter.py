"""OpenAI requests → the engine's inputs: token ids, ``SamplingParams``, submitted request streams.

Every check that answers 400 before a response starts lives here, each naming the request field it is
about (``param``), as do the engine's refusals turned into OpenAI's error statuses: waiting queue full →
429 with ``Retry-After``, engine stopped → 503.
"""

from __future__ import annotations

import math
import re
from typing import Any

from foundry.serve.async_engine import AsyncEngine, EngineDeadError, QueueFullError, RequestStream
from foundry.serve.protocol import ChatCompletionRequest, CompletionRequest
from foundry.serve.sampling_params import SamplingParams


class APIError(Exception):
    """An error answered with OpenAI's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers


def _field_of(message: str) -> str | None:
    """The field a ``ValueError`` names: its message starts with ``field:`` by the engine's convention."""
    m = re.match(r"([A-Za-z_][\w.\[\]]*)\s*:", message)
    return m.group(1) if m else None


class OpenAIAdapter:
    """Turns a validated completion or chat request into engine requests; holds the served model's name,
    context length and tokenizer."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.model_name: str = engine.engine.model_name
        self.max_model_len: int = engine.engine.max_model_len
        self.tokenizer = engine.engine.tokenizer

    # --- the two endpoints' inputs -----------------------------------------------------------------------

    def completion_inputs(self, req: CompletionRequest) -> tuple[list[list[int]], list[SamplingParams]]:
        """A completion's prompts (one or a batch) as token ids, with one ``SamplingParams`` each."""
        self._check_common(req)
        for name, bad in (
            ("echo", req.echo),
            ("suffix", req.suffix is not None),
            ("best_of", req.best_of not in (None, 1)),
        ):
            if bad:
                raise APIError(400, f"{name}: not supported", param=name)
        prompts = self.prompt_batch(req.prompt)
        params = [
            self.sampling_params(req, req.max_tokens, req.logprobs, len(ids), "prompt", "logprobs")
            for ids in prompts
        ]
        return prompts, params

    def chat_inputs(self, req: ChatCompletionRequest) -> tuple[list[list[int]], list[SamplingParams]]:
        """A chat's messages through the tokenizer's chat template: one prompt and its ``SamplingParams``."""
        self._check_common(req)
        if req.top_logprobs is not None and not req.logprobs:
            raise APIError(400, "top_logprobs: requires logprobs=true", param="top_logprobs")
        messages = [{"role": m.role, "content": m.text()} for m in req.messages]
        try:
            text = self.tokenizer.apply_chat_template(messages)
        except ValueError as e:
            raise APIError(400, f"messages: {e}", param="messages") from None
        ids = self.prompt_ids(text)
        max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
        logprobs = (req.top_logprobs or 0) if req.logprobs else None
        return [ids], [self.sampling_params(req, max_tokens, logprobs, len(ids), "messages", "top_logprobs")]

    def _check_common(self, req: CompletionRequest | ChatCompletionRequest) -> None:
        if req.model != self.model_name:
            raise APIError(
                400,
                f"model {req.model!r} is not served here; this server serves {self.model_name!r}",
                param="model",
                code="model_not_found",
            )
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(req, name) != 0:
                raise APIError(400, f"{name}: not supported (must be 0)", param=name)

    # --- prompts and sampling params ------------------------------------------------------------------

    def prompt_ids(self, prompt: Any) -> list[int]:
        ids = self.tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)
        if not ids:
            raise APIError(400, "prompt: must not be empty", param="prompt")
        return ids

    def prompt_batch(self, prompt: Any) -> list[list[int]]:
        """A completion's ``prompt`` (a string, token ids, or a list of either) as token id lists."""
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], str | list):
            return [self.prompt_ids(p) for p in prompt]
        return [self.prompt_ids(prompt)]

    def sampling_params(
        self,
        req: CompletionRequest | ChatCompletionRequest,
        max_tokens: int | None,
        logprobs: int | None,
        num_prompt_tokens: int,
        prompt_field: str,
        logprobs_field: str,
    ) -> SamplingParams:
        if max_tokens is None:
            max_tokens = max(1, self.max_model_len - num_prompt_tokens)
        stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        params = SamplingParams(
            n=req.n,
            max_tokens=max_tokens,
            temperature=1.0 if req.temperature is None else req.temperature,
            top_k=-1 if req.top_k is None else req.top_k,
            top_p=1.0 if req.top_p is None else req.top_p,
            seed=req.seed,
            stop=stop,
            ignore_eos=req.ignore_eos,
            logprobs=logprobs,
        )
        try:
            params.validate()
        except ValueError as e:
            field = _field_of(str(e))
            if field == "logprobs":
                field = logprobs_field
            raise APIError(400, str(e), param=field) from None
        total = num_prompt_tokens + max_tokens
        if total > self.max_model_len:
            param = prompt_field if num_prompt_tokens >= self.max_model_len else "max_tokens"
            raise APIError(
                400,
                f"{param}: this model's maximum context length is {self.max_model_len} tokens; the request "
                f"needs {total} ({num_prompt_tokens} in the prompt + {max_tokens} max_tokens)",
                param=param,
                code="context_length_exceeded",
            )
        return params

    # --- into the engine ----------------------------------------------------------------------------

    async def submit(
        self, request_id: str, prompt_ids: list[int], params: SamplingParams, prompt_field: str
    ) -> list[RequestStream]:
        """One engine request of ``params.n`` samples (the prompt computed once); a stream per sample."""
        try:
            return await self.engine.add_samples(request_id, prompt_ids, params)
        except QueueFullError as e:
            raise APIError(
                429,
                str(e),
                type="rate_limit_error",
                code="queue_full",
                headers={"Retry-After": str(max(1, math.ceil(e.retry_after)))},
            ) from None
        except EngineDeadError as e:
            raise APIError(503, str(e), type="service_unavailable", code="engine_dead") from None
        except ValueError as e:
            field = _field_of(str(e))
            raise APIError(400, str(e), param=prompt_field if field == "prompt" else field) from None

    async def submit_all(
        self, request_id: str, prompts: list[list[int]], params: list[SamplingParams], prompt_field: str
    ) -> list[RequestStream]:
        """Submit one engine request per prompt (ids ``{request_id}-{i}``), each of ``n`` samples (seeded:
        sample j has seed ``seed + j``); streams prompt-major (choice index = prompt index * n + j);
        all or none are accepted."""
        streams: list[RequestStream] = []
        try:
            for i, (ids, p) in enumerate(zip(prompts, params, strict=True)):
                streams += await self.submit(f"{request_id}-{i}", ids, p, prompt_field)
        except BaseException:
            for stream in streams:
                stream.cancel()
            raise
        return streams

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id])
