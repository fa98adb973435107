"""EngineCore: the request table, admission, the decision check, one step, finish and stats. Torch-free.

The serving engine and the simulator are each this core plus an executor:

    LLMEngine = EngineCore + ModelExecutor (cache engine, model runner, sampler) + detokenizer, outputs
    Simulator = EngineCore + CostModelExecutor (a cost model, no tensors)    + a virtual clock, arrivals

so admission, the check of a policy's decision, token emission, finishing and the counters are written
once, here, and the engine and the simulator cannot drift apart. One step:

    decision = policy.schedule(now, block_manager)       # 1. the policy decides       (schedule)
    check(decision)                                       # 2. budgets, known unfinished requests
    plan = apply_decision(decision, block_manager)        # 3. the block manager plans memory (run)
    result = executor.execute(decision, plan, now)        # 4. KV copies + forward pass, or a cost model
    policy.update(decision, result.end, result.elapsed)   # 5. the policy hears how long it took
    emit(decision, result.tokens, result.end)             # 6. advance; caught-up requests get a token

`step(now)` does both halves. The simulator calls `schedule` and `run` apart, because on a virtual
clock a decision that does nothing is no step: it idles until the next arrival instead.

Observers (`StepObserver`, attached with `observe`) see every step without changing it: the calibration
recorder reads each decision, a test's gate holds the engine between steps. Nothing is swapped out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NoReturn, Protocol

from foundry.serve.block_manager import BlockManager
from foundry.serve.memory_plan import MemoryPlan, apply_decision
from foundry.serve.policies.base import Policy, ScheduledRequest, SchedulerOutput
from foundry.serve.sequence import KV_DEVICE, KV_NONE, Sequence


@dataclass(slots=True)
class StepResult:
    """What an executor reports of one step."""

    end: float  # when the step ended: the engine's clock, or the simulator's now + elapsed
    elapsed: float  # the step's duration as the policy hears it
    # one token per request that catches up this step (`ScheduledRequest.is_last_chunk`), in the
    # decision's order; None: placeholders (the simulator generates lengths, not text)
    tokens: list[int] | None
    # (leader, sample, token): a sample of an n > 1 request that waited outside the policy for its
    # leader's prompt; it takes a token from the same logits and shares the leader's KV blocks
    forks: list[tuple[Sequence, Sequence, int]] | None = None
    # speculative decoding: per request, the accepted tokens after its first (`EngineCore.emit`)
    more: dict[str, list[int]] | None = None


class Executor(Protocol):
    def execute(self, decision: SchedulerOutput, plan: MemoryPlan, now: float) -> StepResult:
        """Run the batch after the block manager applied `plan`; `now` is when the step started."""
        ...


class StepObserver:
    """Hooks around each step; override what you need (the defaults do nothing)."""

    def step_starting(self) -> None:
        """Before the step reads its clock (`EngineCore.begin_step`); a test's gate may block here."""

    def decided(self, decision: SchedulerOutput) -> None:
        """The checked decision, before the block manager or the requests change."""

    def step_ended(self, decision: SchedulerOutput, plan: MemoryPlan, result: StepResult) -> None:
        """When the step is wholly done: tokens emitted, finished requests gone, outputs made
        (`EngineCore.end_step`)."""


@dataclass(slots=True)
class CoreStats:
    num_steps: int = 0
    num_preemptions: int = 0
    num_swapped_out: int = 0
    num_swapped_in: int = 0
    num_swapped_blocks: int = 0  # blocks moved over the host link, both ways
    num_finished: int = 0
    num_aborted: int = 0
    busy_time: float = 0.0  # sum of the steps' elapsed


class EngineCore:
    """One instance: a policy, a block manager and an executor over a table of unfinished requests.

    `max_num_seqs`/`max_num_batched_tokens` are the limits every decision is checked against;
    `max_model_len` (None: no limit) bounds prompt + output; `stop(seq, token)` says whether a sampled
    token ends its request (the engine's stop tokens and strings; None: only lengths end requests).
    `on_finish(seq)` observes each request that finishes (the simulator's records; it keeps no finished
    request alive). `check_invariants` runs the block manager's invariant check after every step.
    """

    def __init__(self, policy: Policy, block_manager: BlockManager, executor: Executor, *, max_num_seqs: int,
                 max_num_batched_tokens: int, max_model_len: int | None = None,
                 stop: Callable[[Sequence, int], bool] | None = None,
                 on_finish: Callable[[Sequence], None] | None = None, check_invariants: bool = False) -> None:
        self.policy = policy
        self.block_manager = block_manager
        self.executor = executor
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.max_model_len = max_model_len
        self.stop = stop
        self.on_finish = on_finish
        self.check_invariants = check_invariants
        self.requests: dict[str, Sequence] = {}  # the unfinished requests, by id
        self.stats = CoreStats()
        self.observers: tuple[StepObserver, ...] = ()

    @contextmanager
    def observe(self, observer: StepObserver) -> Iterator[StepObserver]:
        """Attach `observer` for the `with` block."""
        self.observers = (*self.observers, observer)
        try:
            yield observer
        finally:
            self.observers = tuple(o for o in self.observers if o is not observer)

    # ---- admission -----------------------------------------------------------------------------
    def check_new(self, request_id: str) -> None:
        if request_id in self.requests:
            raise ValueError(f"request_id: {request_id!r} is already in the engine")

    def add(self, seq: Sequence, now: float) -> None:
        """Admit a new request, or raise ValueError (message starting with the field to blame)."""
        self.check_new(seq.request_id)
        self.check_admission(len(seq.prompt_token_ids), seq.params.max_tokens)
        self.adopt(seq, now)

    def check_admission(self, num_prompt: int, max_tokens: int) -> None:
        """The one admission rule: a prompt, and prompt + max_tokens within max_model_len and the pool."""
        if num_prompt < 1:
            raise ValueError("prompt: must not be empty")
        if self.max_model_len is not None and num_prompt + max_tokens > self.max_model_len:
            raise ValueError(f"prompt: {num_prompt} prompt tokens + max_tokens {max_tokens} exceed "
                             f"max_model_len {self.max_model_len}")
        need = self.block_manager.most_blocks_held(num_prompt + max_tokens, self.max_num_batched_tokens)
        if need > self.block_manager.device.num_blocks:
            raise ValueError(f"max_tokens: prompt + max_tokens need {need} KV blocks, the device pool has "
                             f"{self.block_manager.device.num_blocks}")

    def adopt(self, seq: Sequence, now: float) -> None:
        """Put a request that passed admission (here, or on another instance before a migration, its KV
        already placed) into the table and the policy. A request with nothing computed yet starts from
        its prompt's longest cached prefix when the block manager caches prefixes."""
        self.check_new(seq.request_id)
        if self.block_manager.prefix_cache is not None and seq.kv_location is KV_NONE \
                and seq.num_computed_tokens == 0:
            hit = self.block_manager.acquire_cached(seq.request_id, seq.prompt_token_ids)
            if hit:
                seq.num_computed_tokens, seq.kv_location = hit, KV_DEVICE
        self.requests[seq.request_id] = seq
        self.policy.add(seq, now)

    # ---- the step ------------------------------------------------------------------------------
    def begin_step(self) -> None:
        """Called by the driver before it reads the clock for a step (observers may hold it here)."""
        for o in self.observers:
            o.step_starting()

    def end_step(self, decision: SchedulerOutput, plan: MemoryPlan, result: StepResult) -> None:
        """Called by the driver once the step is wholly done (its outputs, too)."""
        for o in self.observers:
            o.step_ended(decision, plan, result)

    def step(self, now: float) -> tuple[SchedulerOutput, MemoryPlan, StepResult]:
        self.begin_step()
        decision = self.schedule(now)
        plan, result = self.run(decision, now)
        self.end_step(decision, plan, result)
        return decision, plan, result

    def schedule(self, now: float) -> SchedulerOutput:
        """The policy's decision for a step starting at `now`, checked: a policy bug fails loudly."""
        d = self.policy.schedule(now, self.block_manager)
        if len(d.scheduled) > self.max_num_seqs:
            self._refuse(f"scheduled {len(d.scheduled)} requests > max_num_seqs")
        num_tokens, requests = 0, self.requests
        for item in d.scheduled:  # (one pass: this runs once per generated token in the simulator)
            if item.seq.request_id not in requests:  # finished, aborted, migrated out or never added
                self._refuse(f"scheduled finished or unknown request {item.seq.request_id!r}")
            num_tokens += item.num_tokens
        if num_tokens > self.max_num_batched_tokens:
            self._refuse(f"scheduled {num_tokens} tokens > max_num_batched_tokens")
        for o in self.observers:
            o.decided(d)
        return d

    def _refuse(self, what: str) -> NoReturn:
        raise RuntimeError(f"{type(self.policy).__name__}: {what}")

    def run(self, decision: SchedulerOutput, now: float) -> tuple[MemoryPlan, StepResult]:
        """Apply, execute, tell the policy, emit tokens and finish; the step's plan and result."""
        plan = apply_decision(decision, self.block_manager)
        r = self.executor.execute(decision, plan, now)
        self.policy.update(decision, r.end, r.elapsed)
        if r.forks:  # before emitting: a leader that finishes now frees its blocks
            self._fork(r.forks, r.end)
        self.emit(decision, r.tokens, r.end, r.more)
        if r.forks:  # the samples' first tokens, by the same rule (computed already: 0 tokens to run)
            self.emit(SchedulerOutput([ScheduledRequest(s, 0) for _, s, _ in r.forks]),
                      [t for _, _, t in r.forks], r.end)
        stats = self.stats
        stats.num_steps += 1
        stats.busy_time += r.elapsed
        if plan.num_preempted or plan.num_swapped_in:
            stats.num_preemptions += plan.num_preempted
            stats.num_swapped_out += plan.num_swapped_out
            stats.num_swapped_in += plan.num_swapped_in
            stats.num_swapped_blocks += len(plan.swap_out) + len(plan.swap_in)
        if self.check_invariants:
            self.block_manager.check_invariants()
        return plan, r

    def emit(self, decision: SchedulerOutput, tokens: list[int] | None, now: float,
             more: dict[str, list[int]] | None = None) -> None:
        """After the batch ran: its tokens are computed; each request that caught up gets its token
        (`tokens` in the decision's order; None: 0) and finishes on a stop or at its length limit.
        `more[request_id]`: accepted speculative tokens after the first, each computed in this step
        (emitted one by one under the same rules; what a finish cuts off is dropped from the list)."""
        k = 0
        bm = self.block_manager
        register = None if bm.prefix_cache is None else bm.register_computed
        evict = None if bm.kv_window is None else bm.evict
        for item in decision.scheduled:  # (one pass, advance and emit: runs once per simulated token)
            seq = item.seq
            seq.num_computed_tokens += item.num_tokens
            out = seq.output_token_ids
            if register is not None:  # full blocks now computed become findable by content
                register(seq.request_id, seq.prompt_token_ids, out, seq.num_computed_tokens)
            if evict is not None:  # a KV window: blocks now too old are freed
                evict(seq.request_id, seq.num_computed_tokens)
            if seq.num_computed_tokens != len(seq.prompt_token_ids) + len(out):
                continue  # a prompt chunk short of the end: no token (ScheduledRequest.is_last_chunk)
            if tokens is None:
                token = 0
            else:
                token = tokens[k]
                k += 1
            if not self._take(seq, token, now) and more is not None and seq.request_id in more:
                self._emit_more(seq, more, now)

    def _take(self, seq: Sequence, token: int, now: float) -> bool:
        """A request's next token: append it, then finish on a stop or at a length limit (True)."""
        out = seq.output_token_ids
        out.append(token)
        if seq.first_token_time is None:
            seq.first_token_time = now
        if self.stop is not None and self.stop(seq, token):
            self.finish(seq, "stop", now)
            return True
        max_len = self.max_model_len
        if len(out) >= seq.params.max_tokens or (
                max_len is not None and len(seq.prompt_token_ids) + len(out) >= max_len):
            self.finish(seq, "length", now)
            return True
        return False

    def _emit_more(self, seq: Sequence, more: dict[str, list[int]], now: float) -> None:
        """Speculative tokens accepted after the first: each one's predecessor was computed this step.
        The table then shrinks to the computed tokens (the rejected drafts' slots are freed)."""
        extra, out, emitted = more[seq.request_id], seq.output_token_ids, 0
        for token in extra:
            seq.num_computed_tokens += 1
            emitted += 1
            if self._take(seq, token, now):
                break
        del extra[emitted:]
        if not seq.is_finished:
            self.block_manager.truncate(seq.request_id, seq.num_computed_tokens)
            self.block_manager.evict(seq.request_id, seq.num_computed_tokens)
            if self.block_manager.prefix_cache is not None:
                self.block_manager.register_computed(seq.request_id, seq.prompt_token_ids, out,
                                                     seq.num_computed_tokens)

    def _fork(self, forks: list[tuple[Sequence, Sequence, int]], now: float) -> None:
        """Samples join at their leader's prompt: they share its blocks (copy-on-write) and the policy."""
        for leader, seq, _ in forks:
            self.block_manager.fork(leader.request_id, seq.request_id)
            seq.num_computed_tokens, seq.kv_location = len(leader.prompt_token_ids), KV_DEVICE
            self.adopt(seq, now)

    # ---- leaving -------------------------------------------------------------------------------
    def finish(self, seq: Sequence, reason: str, now: float) -> None:
        seq.is_finished, seq.finish_reason, seq.finish_time = True, reason, now
        self.release(seq.request_id)
        self.stats.num_finished += 1
        if self.on_finish is not None:
            self.on_finish(seq)

    def abort(self, request_id: str) -> Sequence | None:
        """Drop an unfinished request (None if there is none by that id)."""
        if request_id not in self.requests:
            return None
        seq = self.release(request_id)
        self.aborted(seq)
        return seq

    def aborted(self, seq: Sequence) -> None:
        """Mark a request aborted and count it (`abort`; the engine's samples still outside the table)."""
        seq.kv_location = KV_NONE
        seq.is_finished, seq.finish_reason = True, "abort"
        self.stats.num_aborted += 1

    def release(self, request_id: str) -> Sequence:
        """Take a request out of the table and the policy and free its blocks (a migration reads its
        KV first)."""
        seq = self.requests.pop(request_id)
        self.policy.remove(seq)
        self.block_manager.free(request_id)
        seq.kv_location = KV_NONE
        return seq
