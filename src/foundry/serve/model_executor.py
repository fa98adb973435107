"""The model executor: what runs a step in the engine, as the cost-model executor does in the simulator.

`execute(decision, plan, now)`: the cache engine runs the plan's KV copies (swap out, swap in,
copy-on-write), the model runner computes the batch over the paged cache, the sampler picks a token
for every request that caught up. Time is the engine's clock: the step's `elapsed` runs from `now`
(the step's start, before the policy decided) to the end of sampling.
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
from foundry.serve.sampler import sample
from foundry.serve.sequence import Sequence


@dataclass(slots=True)
class ModelStepResult(StepResult):
    sampled: list[Sequence] = field(default_factory=list)  # the requests `tokens` are for, in order
    logprobs: list[TokenLogprob | None] = field(default_factory=list)  # one per sampled request
    sum_context_len: int = 0
    num_decode: int = 0
    execute_time: float = 0.0  # model forward + sampling, seconds


class ModelExecutor:
    """`generator(request_id)` gives a request's sampler stream (None: greedy); `waiting(request_id)` the
    samples of an n > 1 request waiting for that leader's prompt, which sample from the same logits."""

    def __init__(self, runner: ModelRunner, cache_engine: CacheEngine, block_manager: BlockManager,
                 clock: Callable[[], float], generator: Callable[[str], torch.Generator | None],
                 waiting: Callable[[str], list[Sequence]], logprobs_mode: str) -> None:
        self.runner = runner
        self.cache_engine = cache_engine
        self.block_manager = block_manager
        self.clock = clock
        self.generator = generator
        self.waiting = waiting
        self.logprobs_mode = logprobs_mode

    def execute(self, decision: SchedulerOutput, plan: MemoryPlan, now: float) -> ModelStepResult:
        self.cache_engine.execute(plan)
        start = self.clock()
        if not decision.scheduled:
            end = self.clock()
            return ModelStepResult(end, end - now, [], execute_time=end - start)
        num_decode = sum(1 for s in decision.scheduled if s.is_decode)
        logits, inp = self.runner.execute(decision.scheduled, self.block_manager)
        seqs, n = list(inp.sampled), len(inp.sampled)
        leaders = [(i, w) for i, s in enumerate(inp.sampled) for w in self.waiting(s.request_id)]
        if leaders:  # waiting samples of a prompt completed now sample from its logits too
            seqs += [w for _, w in leaders]
            logits = logits[list(range(n)) + [i for i, _ in leaders]]
        gens = [self.generator(s.request_id) for s in seqs]
        tokens, logprobs = sample(logits, [s.params for s in seqs], gens, self.logprobs_mode)
        end = self.clock()
        # the runner's rows put decodes first; the core takes the tokens in the decision's order
        row = {id(seq): i for i, seq in enumerate(inp.sampled)}
        order = [row[id(item.seq)] for item in decision.scheduled if item.is_last_chunk]
        forks = [(inp.sampled[i], w, tokens[n + j]) for j, (i, w) in enumerate(leaders)]
        order += range(n, len(seqs))  # `sampled` and `logprobs`: the batch's, then the forked samples
        return ModelStepResult(end, end - now, [tokens[i] for i in order[:n]], forks,
                               [seqs[i] for i in order], [logprobs[i] for i in order], inp.sum_context_len,
                               num_decode, end - start)
