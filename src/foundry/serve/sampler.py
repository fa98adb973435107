"""Token sampling: greedy, temperature, top-k, top-p, per-request generators, logprobs."""

from __future__ import annotations

import torch

from foundry.serve.outputs import TokenLogprob
from foundry.serve.sampling_params import SamplingParams


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """logits: [V] (already temperature-scaled) -> logits with excluded tokens at -inf."""
    if top_k > 0 and top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        # drop a token when the tokens ranked above it already cover top_p (the first always stays)
        drop = (torch.cumsum(probs, dim=-1) - probs) >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.empty_like(logits).scatter_(0, order, sorted_logits)
    return logits


def sample(
    logits: torch.Tensor,  # [N, V] fp32
    params: list[SamplingParams],
    generators: list[torch.Generator],
    logprobs_mode: str = "raw",
) -> tuple[list[int], list[TokenLogprob | None]]:
    """Sample one token per row; a row's `TokenLogprob` when its params ask for logprobs.

    `logprobs_mode` "raw" reports log_softmax(logits); "processed" reports the distribution the token
    was drawn from: log_softmax of the logits divided by the temperature, after top-k/top-p (excluded
    tokens at -inf). A greedy row has no temperature, so its processed logprobs are the raw ones.
    """
    greedy = [p.is_greedy for p in params]
    want = [i for i, p in enumerate(params) if p.logprobs is not None or p.return_output_logprobs]
    processed: dict[int, torch.Tensor] = {}  # row -> the tempered, filtered logits it was sampled from
    tokens: list[int] = [0] * len(params)
    if any(greedy):
        argmax = logits.argmax(dim=-1).tolist()
        for i, g in enumerate(greedy):
            if g:
                tokens[i] = argmax[i]
    for i, p in enumerate(params):
        if greedy[i]:
            continue
        row = filter_logits(logits[i] / p.temperature, p.top_k, p.top_p)
        probs = torch.softmax(row, dim=-1)
        tokens[i] = int(torch.multinomial(probs, 1, generator=generators[i]).item())
        if logprobs_mode == "processed":
            processed[i] = row
    logprobs: list[TokenLogprob | None] = [None] * len(params)
    if want:
        rows = logits[want]
        if processed:
            rows = torch.stack([processed.get(i, logits[i]) for i in want])
        lp = torch.log_softmax(rows, dim=-1)
        for row, i in enumerate(want):
            logprobs[i] = token_logprob(lp[row], tokens[i], params[i].logprobs)
    return tokens, logprobs


def token_logprob(lp: torch.Tensor, token: int, k: int | None) -> TokenLogprob:
    """A token's logprob in one row of log-probabilities [V], with the row's top `k` alternatives."""
    top = {}
    if k:
        vals, idx = torch.topk(lp, k)
        # tokens a processed distribution excludes (-inf) are no alternatives (and not JSON)
        top = {t: x for t, x in zip(idx.tolist(), vals.tolist(), strict=True) if x != float("-inf")}
    return TokenLogprob(token, float(lp[token]), top)


def verify_drafts(logits: torch.Tensor, drafts: list[int], params: SamplingParams, generator: torch.Generator
                  | None, logprobs_mode: str) -> tuple[list[int], list[TokenLogprob | None]]:
    """The tokens the target emits for one request: logits [k+1, V] are the target's at the last token
    and at each draft; returns (accepted drafts + one target token, one logprob entry per token)."""
    want_lp = params.logprobs is not None or params.return_output_logprobs
    tokens: list[int] = []
    rows: list[torch.Tensor] = []  # the distribution (raw or processed logits) each token came from
    if params.is_greedy:
        best = logits.argmax(dim=-1).tolist()
        m = 0
        while m < len(drafts) and best[m] == drafts[m]:
            m += 1
        tokens = drafts[:m] + [best[m]]
        rows = [logits[i] for i in range(m + 1)]
    else:
        for i in range(len(drafts) + 1):
            row = filter_logits(logits[i] / params.temperature, params.top_k, params.top_p)
            p = torch.softmax(row, dim=-1)
            rows.append(row if logprobs_mode == "processed" else logits[i])
            if i == len(drafts):  # every draft accepted: the bonus token, from the target as is
                tokens.append(int(torch.multinomial(p, 1, generator=generator).item()))
                break
            d = drafts[i]
            u = float(torch.rand((), generator=generator))
            if u < float(p[d]):
                tokens.append(d)
                continue
            residual = p.clone()
            residual[d] = 0.0
            if float(residual.sum()) <= 0.0:  # p was one-hot on d: cannot happen after u < p(d) failed
                residual = p
            tokens.append(int(torch.multinomial(residual, 1, generator=generator).item()))
            break
    if not want_lp:
        return tokens, [None] * len(tokens)
    return tokens, [token_logprob(torch.log_softmax(r, dim=-1), t, params.logprobs)
                    for r, t in zip(rows, tokens, strict=True)]
