"""The model executor: what runs a step in the engine, as the cost-model executor does in the simulator.

`execute(decision, plan, now)`: the cache engine runs the plan's KV copies (swap out, swap in,
copy-on-write), the model runner computes the batch over the paged cache, the sampler picks a token
for every request that caught up. With a speculative proposer, decoding requests first get draft
tokens and the slots for them; `speculative.verify` then keeps what the target agrees with, and the
core emits those tokens and gives the rest of the slots back. Time is the engine's clock: the step's
`elapsed` runs from `now` (the step's start, before the policy decided) to the end of sampling.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from foundry.serve.block_manager import BlockManager
from foundry.serve.cache_engine import CacheEngine
from foundry.serve.core import StepResult
from foundry.serve.memory_plan import MemoryPlan
from foundry.serve.model_runner import ModelRunner
from foundry.serve.outputs import TokenLogprob
from foundry.serve.policies.base import SchedulerOutput
from foundry.serve.sampler import sample, verify_drafts
from foundry.serve.sequence import Sequence
from foundry.serve.speculative import AcceptanceGuard, Proposer, SpeedGuard


@dataclass(slots=True)
class ModelStepResult(StepResult):
    sampled: list[Sequence] = field(default_factory=list)  # the requests `tokens` are for, in order
    logprobs: list[TokenLogprob | None] = field(default_factory=list)  # one per sampled request
    sum_context_len: int = 0
    num_decode: int = 0
    execute_time: float = 0.0  # model forward + sampling, seconds
    more_logprobs: dict[str, list[TokenLogprob | None]] = field(default_factory=dict)  # of `more`


class ModelExecutor:
    """`generator(request_id)` gives a request's sampler stream (None: greedy); `waiting(request_id)` the
    samples of an n > 1 request waiting for that leader's prompt, which sample from the same logits."""

    def __init__(self, runner: ModelRunner, cache_engine: CacheEngine, block_manager: BlockManager,
                 clock: Callable[[], float], generator: Callable[[str], torch.Generator | None],
                 waiting: Callable[[str], list[Sequence]], logprobs_mode: str,
                 proposer: Proposer | None = None, max_model_len: int | None = None,
                 guard: AcceptanceGuard | None = None, speed: SpeedGuard | None = None) -> None:
        self.runner = runner
        self.cache_engine = cache_engine
        self.block_manager = block_manager
        self.clock = clock
        self.generator = generator
        self.waiting = waiting
        self.logprobs_mode = logprobs_mode
        self.proposer = proposer
        self.guard = guard
        self.speed = speed
        self.max_model_len = max_model_len
        self.num_draft_tokens = 0  # proposed by the proposer, over the engine's life
        self.num_accepted_tokens = 0  # of those, kept

    def _propose(self, decision: SchedulerOutput) -> dict[str, list[int]]:
        """Drafts for the batch's decoding requests, each within its length limits and the free
        blocks; their tables grow to hold them (copy-on-write of a shared last block included)."""
        wants: dict[str, tuple[list[int], int]] = {}
        seqs: dict[str, Sequence] = {}
        for item in decision.scheduled:
            seq = item.seq
            if not item.is_decode:
                continue
            total = len(seq.prompt_token_ids) + len(seq.output_token_ids)
            room = seq.params.max_tokens - len(seq.output_token_ids) - 1
            if self.max_model_len is not None:
                room = min(room, self.max_model_len - total - 1)
            if room > 0 and (self.guard is None or self.guard.allows(seq.request_id)):
                wants[seq.request_id] = (seq.prompt_token_ids + seq.output_token_ids, room)
                seqs[seq.request_id] = seq
        if self.guard is not None and len(self.guard.recent) > 4 * len(decision.scheduled) + 64:
            self.guard.keep_only({item.seq.request_id for item in decision.scheduled})
        drafts: dict[str, list[int]] = {}
        bm = self.block_manager
        for rid, draft in self.proposer.propose_batch(wants).items() if wants else ():
            seq = seqs[rid]
            need = seq.num_computed_tokens + 1 + len(draft)
            if bm.num_new_blocks(seq.request_id, need) > bm.num_free_device_blocks:
                continue
            copies = bm.append(seq.request_id, need)
            if copies:
                self.cache_engine.execute(MemoryPlan(copy_on_write=copies))
            drafts[seq.request_id] = draft
        return drafts

    def execute(self, decision: SchedulerOutput, plan: MemoryPlan, now: float) -> ModelStepResult:
        self.cache_engine.execute(plan)
        start = self.clock()
        if not decision.scheduled:
            end = self.clock()
            return ModelStepResult(end, end - now, [], execute_time=end - start)
        num_decode = sum(1 for s in decision.scheduled if s.is_decode)
        all_decode = num_decode == len(decision.scheduled)
        drafting = self.proposer is not None and (self.speed is None or self.speed.speculate())
        drafts = self._propose(decision) if drafting else None
        logits, spec_logits, inp = self.runner.execute(decision.scheduled, self.block_manager, drafts)
        seqs, n = list(inp.sampled), len(inp.sampled)
        leaders = [(i, w) for i, s in enumerate(inp.sampled) for w in self.waiting(s.request_id)]
        if leaders:  # waiting samples of a prompt completed now sample from its logits too
            seqs += [w for _, w in leaders]
            logits = logits[list(range(n)) + [i for i, _ in leaders]]
        gens = [self.generator(s.request_id) for s in seqs]
        tokens, logprobs = sample(logits, [s.params for s in seqs], gens, self.logprobs_mode)
        more, more_lp, row = {}, {}, 0
        for seq, rows in inp.spec:  # drafted requests: the target keeps what it agrees with
            rid = seq.request_id
            kept, lps = verify_drafts(spec_logits[row:row + rows], drafts[rid], seq.params,
                                      self.generator(rid), self.logprobs_mode)
            row += rows
            self.num_draft_tokens += rows - 1
            self.num_accepted_tokens += len(kept) - 1
            if self.guard is not None:
                self.guard.record(rid, rows - 1, len(kept) - 1)
            seqs.append(seq)  # the first token joins the others; the rest go to `more`
            tokens.append(kept[0])
            logprobs.append(lps[0])
            more[rid], more_lp[rid] = kept[1:], lps[1:]
        end = self.clock()
        if self.speed is not None and all_decode:
            self.speed.record(bool(drafts), end - start, num_decode + sum(map(len, more.values())))
        # the runner's rows put decodes first, then drafted requests; the core takes the tokens in the
        # decision's order
        row_of = {id(seq): i for i, seq in enumerate(inp.sampled)}
        row_of.update((id(seq), len(seqs) - len(inp.spec) + j) for j, (seq, _) in enumerate(inp.spec))
        order = [row_of[id(item.seq)] for item in decision.scheduled if item.is_last_chunk]
        forks = [(inp.sampled[i], w, tokens[n + j]) for j, (i, w) in enumerate(leaders)]
        order += range(n, n + len(leaders))  # `sampled` and `logprobs`: the batch's, then forked samples
        return ModelStepResult(end, end - now, [tokens[i] for i in order[:len(order) - len(leaders)]],
                               forks, more or None, sampled=[seqs[i] for i in order],
                               logprobs=[logprobs[i] for i in order], sum_context_len=inp.sum_context_len,
                               num_decode=num_decode, execute_time=end - start, more_logprobs=more_lp)
