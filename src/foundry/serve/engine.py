"""LLMEngine: an `EngineCore` with the model executor, plus tokenisation, detokenisation and outputs.

One `step()` is one `EngineCore.step(now)` on the engine's clock (the policy decides → the block
manager plans memory → the `ModelExecutor` copies KV, runs the model and samples → the policy hears
how long it took → the core emits tokens and finishes requests), then the text deltas and
`RequestOutput`s. Admission, the decision check and finishing are the core's, shared with the
simulator. Not thread-safe.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from foundry.llm.loader import check_in_memory_model, load_model, resolve_device
from foundry.llm.models.llama import LlamaForCausalLM
from foundry.llm.quantize import quantization_of, quantize_model
from foundry.llm.tokenizer import Tokenizer, prompt_token_ids
from foundry.serve.block_manager import BlockManager
from foundry.serve.cache_engine import CacheEngine, kv_bytes_per_token
from foundry.serve.config import EngineConfig
from foundry.serve.core import EngineCore
from foundry.serve.detokenizer import IncrementalDetokenizer
from foundry.serve.draft_model import build_proposer
from foundry.serve.memory_plan import MemoryPlan, apply_decision
from foundry.serve.model_executor import ModelExecutor, ModelStepResult
from foundry.serve.model_runner import ModelRunner
from foundry.serve.outputs import EngineStats, IterationRecord, RequestOutput
from foundry.serve.policies import Policy, SchedulerOutput, build_policy
from foundry.serve.sample_groups import SampleGroups
from foundry.serve.sampling_params import SamplingParams, sample_params, sample_request_ids
from foundry.serve.sequence import KVLocation, Sequence, SequenceStatus
from foundry.serve.speculative import AcceptanceGuard, SpeedGuard


@dataclass
class MigratedRequest:
    """An unfinished request in transit between engines: its state, sampler stream, text state, KV."""

    seq: Sequence
    generator: torch.Generator | None
    detok: IncrementalDetokenizer
    kv: torch.Tensor | None  # [layers, 2, kv_heads, blocks, block_size, head_dim]; None = recompute


@dataclass
class _Request:  # what the engine keeps beside the core's request state: the sampler stream, the text
    seq: Sequence
    generator: torch.Generator | None
    detok: IncrementalDetokenizer


class LLMEngine:
    """The serving engine over one model, one KV pool pair and one policy.

    `policy` overrides the one named in `config` (any `Policy` subclass, e.g. a FastServe policy
    under test). The engine clock is `clock` (`time.monotonic` unless a test or a replay gives another:
    the policy hears only this clock's times); callers may pass their own arrival times.

    `model` and `tokenizer` hand over a model already in memory (an RL trainer's) instead of loading
    `config.model`: the engine runs that very module, sharing its parameters by reference (nothing is
    copied), so the owner's in-place updates are what the next step computes with (announce them with
    `set_weight_version`). Its parameters must already be on `config.device.device` in `config.device.dtype`.
    `check_invariants` audits the block manager after every step (tests).
    """

    def __init__(self, config: EngineConfig, policy: Policy | None = None,
                 clock: Callable[[], float] = time.monotonic, *, model: LlamaForCausalLM | None = None,
                 tokenizer: Tokenizer | None = None, model_name: str = "in-memory",
                 check_invariants: bool = False) -> None:
        self.config = config
        self.clock = clock
        self.device = resolve_device(config.device.device)
        dtype = getattr(torch, config.device.dtype)
        if (model is None) != (tokenizer is None):
            raise ValueError("model: pass a model together with its tokenizer, or neither")
        if model is None:
            self.model, self.tokenizer, self.model_name = load_model(
                config.model, self.device, dtype, config.seed
            )
            if config.quantization is not None:
                quantize_model(self.model, config.quantization)
        elif quantization_of(model) != config.quantization:
            raise ValueError(f"quantization: the config says {config.quantization}, the handed-over model is "
                             f"{quantization_of(model)}; the engine never changes a handed-over model")
        else:
            check_in_memory_model(model, self.device, dtype)
            self.model, self.tokenizer, self.model_name = model, tokenizer, model_name
        mcfg = self.model.config
        self.max_model_len = config.max_model_len or mcfg.max_position_embeddings
        if self.max_model_len > mcfg.max_position_embeddings:
            raise ValueError(f"max_model_len: {self.max_model_len} exceeds the model's "
                             f"{mcfg.max_position_embeddings} positions")
        bs, cache = config.cache.block_size, config.cache
        per_seq = -(-self.max_model_len // bs)
        num_device_blocks = cache.num_device_blocks
        if num_device_blocks is None:
            budget = int(cache.kv_cache_memory_mb * 2**20) // (bs * kv_bytes_per_token(mcfg, dtype))
            num_device_blocks = max(1, min(budget, config.scheduler.max_num_seqs * per_seq))
        window = None if cache.kv_window_tokens is None else (cache.kv_sink_tokens, cache.kv_window_tokens)
        self.block_manager = BlockManager(bs, num_device_blocks, cache.num_host_blocks,
                                          prefix_caching=cache.enable_prefix_caching, kv_window=window)
        self.cache_engine = CacheEngine(
            mcfg, bs, num_device_blocks, cache.num_host_blocks, self.device, dtype
        )
        self.runner = ModelRunner(self.model, self.cache_engine, bs, self.device)
        proposer = build_proposer(config, self.model, self.tokenizer, num_device_blocks, self.device, dtype,
                                  lambda rid: rid in self._requests)
        self.executor = executor = ModelExecutor(
            self.runner, self.cache_engine, self.block_manager, clock,
            lambda rid: self._requests[rid].generator, self._waiting_samples, config.logprobs_mode, proposer,
            self.max_model_len, AcceptanceGuard(config.speculative.min_acceptance)
            if proposer is not None and config.speculative.min_acceptance > 0 else None,
            SpeedGuard() if proposer is not None and config.speculative.speed_guard else None)
        self.core = EngineCore(
            policy if policy is not None else build_policy(config.scheduler), self.block_manager, executor,
            max_num_seqs=config.scheduler.max_num_seqs,
            max_num_batched_tokens=config.scheduler.max_num_batched_tokens,
            max_model_len=self.max_model_len, stop=self._is_stop, check_invariants=check_invariants,
        )
        self.iteration_records: list[IterationRecord] = []
        self.weight_version = 0
        self._requests: dict[str, _Request] = {}  # every unfinished sample, also those not yet in the core
        self._groups: SampleGroups[_Request] = SampleGroups()  # n > 1: samples and their shared prompt
        self._seed_rng = random.Random(config.seed)
        self._generate_counter = 0

    @property
    def policy(self) -> Policy:
        return self.core.policy

    def rebuilt(self, config: EngineConfig | None = None, policy: Policy | None = None) -> LLMEngine:
        """A fresh engine over this one's model (its weights shared, not copied) with its own KV cache,
        clock and an idle core: `config` (default: this one's) with `policy` (default: the config's).
        This engine is left as it was; drop it to free its KV cache."""
        return LLMEngine(config or self.config, policy, self.clock, model=self.model,
                         tokenizer=self.tokenizer, model_name=self.model_name)

    # ---- requests ------------------------------------------------------------------------------
    def add_request(self, request_id: str, prompt: str | list[int], params: SamplingParams,
                    arrival_time: float | None = None) -> None:
        """Queue a request. With `params.n > 1` it becomes n samples `{request_id}-{j}` (outputs carry
        those ids) whose prompt is computed once: sample 0 computes it, the others then fork its KV
        blocks (copy-on-write) and sample from the same last logits; a seeded sample j uses seed + j.
        `abort_request(request_id)` aborts them all, `abort_request(f"{request_id}-{j}")` one."""
        if not isinstance(request_id, str) or not request_id:
            raise ValueError(f"request_id: must be a non-empty string, got {request_id!r}")
        params.validate()
        sample_ids = sample_request_ids(request_id, params.n)
        for rid in dict.fromkeys([request_id, *sample_ids]):
            if rid in self._requests or self._groups.is_taken(rid):
                raise ValueError(f"request_id: {rid!r} is already in the engine")
        ids = prompt_token_ids(prompt, self.tokenizer, self.model.config.vocab_size)
        self.core.check_admission(len(ids), params.max_tokens)  # against max_model_len and the device pool
        now = self.clock() if arrival_time is None else arrival_time
        if params.n == 1:
            samples = {request_id: self._new_request(request_id, ids, params, now)}
        else:
            samples = {sid: self._new_request(sid, ids, sample_params(params, j), now)
                       for j, sid in enumerate(sample_ids)}
            self._groups.add(request_id, samples)
        self._requests.update(samples)
        self.core.adopt(samples[sample_ids[0]].seq, now)  # the leader; the others wait for its prompt

    def _new_request(self, request_id: str, ids: list[int], params: SamplingParams, now: float) -> _Request:
        gen = None
        if not params.is_greedy:
            seed = params.seed if params.seed is not None else self._seed_rng.getrandbits(63)
            gen = torch.Generator(device=self.device).manual_seed(seed)
        detok = IncrementalDetokenizer(self.tokenizer, ids, params.stop)
        return _Request(Sequence(request_id, ids, params, now), gen, detok)

    def _waiting_samples(self, leader_id: str) -> list[Sequence]:
        return [r.seq for r in self._groups.waiting.get(leader_id, {}).values()]

    def has_request(self, request_id: str) -> bool:
        """The request (or sample `{id}-{j}`) is in this engine, unfinished."""
        return request_id in self._requests

    def prompt_pending(self, request_id: str) -> bool:
        """Samples of this request (n > 1) still wait for its prompt to be computed (not migratable yet)."""
        return any(leader in self._groups.waiting for leader in self._groups.sample_ids(request_id) or [])

    def abort_request(self, request_id: str) -> None:
        """Abort a request (all its samples when it has n > 1), or one sample `{id}-{j}`."""
        for rid in self._groups.sample_ids(request_id) or [request_id]:
            self._abort_one(rid)

    def _abort_one(self, request_id: str) -> None:
        if self.core.abort(request_id) is not None:
            promoted = self._groups.promote(request_id)  # it led samples still waiting for the prompt
            if promoted is not None:
                self.core.adopt(promoted.seq, self.clock())
        else:
            req = self._groups.take_waiting(request_id)
            if req is None:
                return
            self.core.aborted(req.seq)
        self._groups.forget(request_id)
        del self._requests[request_id]

    def migrate_out(self, request_id: str, keep_kv: bool = True) -> MigratedRequest:
        """Take an unfinished request out of this engine, with its KV (or for recompute elsewhere)."""
        if request_id in self._groups.waiting:
            raise ValueError(f"request_id: {request_id!r} has samples waiting for its prompt; migrate it "
                             "once its first token is out")
        seq = self.core.requests.get(request_id)
        if seq is None:
            raise ValueError(f"request_id: {request_id!r} is not in the engine")
        kv = None
        if keep_kv and seq.kv_location is not KVLocation.NONE:
            pool = "device" if seq.kv_location is KVLocation.DEVICE else "host"
            kv = self.cache_engine.read_blocks(self.block_manager.block_ids(request_id), pool)
        self.core.release(request_id)
        self._groups.forget(request_id)
        req = self._requests.pop(request_id)
        if kv is None:
            seq.num_computed_tokens = 0
        return MigratedRequest(seq, req.generator, req.detok, kv)

    def migrate_in(self, m: MigratedRequest) -> None:
        """Adopt a request from `migrate_out` of an engine with the same model and block size."""
        seq = m.seq
        self.core.check_new(seq.request_id)
        if m.kv is not None:
            if m.kv.shape[4] != self.block_manager.block_size:
                raise ValueError(f"kv: block size {m.kv.shape[4]} != {self.block_manager.block_size}")
            if not self.block_manager.can_allocate(seq.request_id, seq.num_computed_tokens):
                raise RuntimeError(f"request {seq.request_id!r}: not enough free device blocks for its KV")
            self.block_manager.allocate(seq.request_id, seq.num_computed_tokens)
            self.cache_engine.write_blocks(self.block_manager.block_ids(seq.request_id), m.kv)
            seq.kv_location = KVLocation.DEVICE
        self._requests[seq.request_id] = _Request(seq, m.generator, m.detok)
        self.core.adopt(seq, self.clock())

    def has_unfinished_requests(self) -> bool:
        return bool(self.core.requests)

    # ---- the loop ------------------------------------------------------------------------------
    def step(self) -> list[RequestOutput]:
        self.core.begin_step()  # observers first (a test's gate holds the step before its clock starts)
        start = self.clock()
        decision = self.core.schedule(start)  # the policy decides (checked)
        if decision.is_empty and self.core.requests:
            self._release_shared_kv()
        plan, result = self.core.run(decision, start)  # plan memory, execute, update, tokens, finishes
        for leader, _, _ in result.forks or ():
            self._groups.pop_waiting(leader.request_id)  # its samples joined the core
        outputs = self._outputs(result)  # text deltas and RequestOutputs
        self._record(decision, plan, result, start)
        self.core.end_step(decision, plan, result)
        return outputs

    def _release_shared_kv(self) -> None:
        """Liveness: nothing could run, and forked samples may pin shared blocks that no policy can
        preempt (a sample waiting for its first turn holds them), as may requests waiting with the
        cached blocks of their prefix. Drop those tables for recompute (a dropped request computes its
        prefix itself); with n = 1 and no prefix caching this does nothing."""
        bm, refcount = self.block_manager, self.block_manager.device.refcount
        caching = bm.prefix_cache is not None  # a waiting request holds the cached blocks of its prefix
        if bm.device.num_shared == 0 and not caching:
            return
        pinned = [s for s in self.core.requests.values() if s.kv_location is KVLocation.DEVICE
                  and ((caching and not s.output_token_ids)
                       or any(refcount[b] > 1 for b in bm.block_ids(s.request_id)))]
        if pinned:
            plan = apply_decision(SchedulerOutput(recompute=pinned), bm)
            self.core.stats.num_preemptions += plan.num_preempted

    def _is_stop(self, seq: Sequence, token: int) -> bool:
        """The core asks, per sampled token: EOS, a stop token id, or a stop string completed by it."""
        p = seq.params
        if (not p.ignore_eos and token == self.tokenizer.eos_token_id) or token in p.stop_token_ids:
            return True
        detok = self._requests[seq.request_id].detok
        detok.add(token)
        return detok.stopped

    def _outputs(self, r: ModelStepResult) -> list[RequestOutput]:
        outputs = []
        tokens = r.tokens + [t for _, _, t in r.forks or ()]  # r.sampled: the batch's, then forked samples
        more = r.more or {}
        for seq, tok, lp in zip(r.sampled, tokens, r.logprobs, strict=True):
            extra = more.get(seq.request_id, ())  # accepted speculative tokens after the first
            new_tokens, lps = [tok, *extra], [lp, *r.more_logprobs.get(seq.request_id, [])[:len(extra)]]
            seq.weight_versions.extend([self.weight_version] * len(new_tokens))
            p = seq.params
            if p.return_output_logprobs:
                seq.output_logprobs.extend(x.logprob for x in lps)
            finished = seq.is_finished
            detok = self._requests[seq.request_id].detok
            if finished:
                detok.flush()
                del self._requests[seq.request_id]
                self._groups.forget(seq.request_id)
            new_text = detok.take_delta(finished=finished)
            outputs.append(RequestOutput(
                request_id=seq.request_id, prompt_token_ids=seq.prompt_token_ids,
                output_token_ids=list(seq.output_token_ids), new_token_ids=new_tokens,
                text=detok.emitted_text, new_text=new_text, logprobs=None if p.logprobs is None else lps,
                finished=finished, finish_reason=seq.finish_reason, arrival_time=seq.arrival_time,
                first_token_time=seq.first_token_time, finish_time=seq.finish_time,
                weight_versions=list(seq.weight_versions),
                output_logprobs=list(seq.output_logprobs) if p.return_output_logprobs else None,
            ))
        return outputs

    def _record(self, d: SchedulerOutput, plan: MemoryPlan, r: ModelStepResult, start: float) -> None:
        self.iteration_records.append(IterationRecord(
            step=self.core.stats.num_steps - 1, start_time=start, elapsed=self.clock() - start,
            execute_time=r.execute_time, num_prefill_tokens=d.num_batched_tokens - r.num_decode,
            num_decode_tokens=r.num_decode, num_seqs=len(d.scheduled), sum_context_len=r.sum_context_len,
            num_swapped_out=plan.num_swapped_out, num_swapped_in=plan.num_swapped_in,
            num_preempted=plan.num_preempted,
        ))

    # ---- conveniences --------------------------------------------------------------------------
    def generate(self, prompts: list[str | list[int]],
                 params: SamplingParams | list[SamplingParams]) -> list[RequestOutput]:
        """Run until these prompts finish; final outputs in input order (a prompt's n samples in a row)."""
        plist = params if isinstance(params, list) else [params] * len(prompts)
        if len(plist) != len(prompts):
            raise ValueError(f"params: {len(plist)} sampling params for {len(prompts)} prompts")
        self._generate_counter += 1
        ids = [f"generate-{self._generate_counter}-{i}" for i in range(len(prompts))]
        try:
            for rid, prompt, p in zip(ids, prompts, plist, strict=True):
                self.add_request(rid, prompt, p)
        except ValueError:
            for rid in ids:
                self.abort_request(rid)
            raise
        samples = [sid for rid, p in zip(ids, plist, strict=True) for sid in sample_request_ids(rid, p.n)]
        final: dict[str, RequestOutput] = {}
        wanted = set(samples)
        while len(final) < len(samples):
            if not any(sid in self._requests for sid in samples if sid not in final):
                raise RuntimeError("generate: a request was aborted before it finished")
            for out in self.step():
                if out.finished and out.request_id in wanted:
                    final[out.request_id] = out
        return [final[sid] for sid in samples]

    def stats(self) -> EngineStats:
        counts = {s: 0 for s in SequenceStatus}
        for seq in self.core.requests.values():
            counts[seq.status] += 1
        c, cache = self.core.stats, self.block_manager.prefix_cache
        return EngineStats(
            num_waiting=counts[SequenceStatus.WAITING] + self._groups.num_waiting,
            num_running=counts[SequenceStatus.RUNNING], num_swapped=counts[SequenceStatus.SWAPPED],
            device_kv_usage=self.block_manager.device_usage,
            host_kv_usage=self.block_manager.host_usage, num_preemptions=c.num_preemptions,
            num_swapped_out=c.num_swapped_out, num_swapped_in=c.num_swapped_in,
            num_steps=c.num_steps, num_finished=c.num_finished, num_aborted=c.num_aborted,
            weight_version=self.weight_version, policy_stats=self.policy.stats(),
            prefix_cache_hit_rate=None if cache is None else cache.hit_rate,
            spec_acceptance_rate=None if self.executor.proposer is None else (
                self.executor.num_accepted_tokens / max(1, self.executor.num_draft_tokens)),
            spec_draft_tokens=self.executor.num_draft_tokens,
            num_cached_blocks=0 if cache is None else cache.num_cached_blocks,
        )

    def load_weights(self, state_dict: dict[str, torch.Tensor], version: int) -> None:
        """Copy in new weights between steps (RL weight sync); later tokens carry `version`.

        `version` must exceed the current one (checked before any weight is touched). The KV already
        cached for running requests stays as the old weights computed it.
        """
        self._check_version(version)
        if self.config.quantization is not None:
            raise ValueError("load_weights: the model is quantised; new weights need a fresh engine")
        self.model.load_weights(state_dict)
        self.weight_version = version

    def set_weight_version(self, version: int) -> None:
        """The owner of a handed-over model changed its weights in place; later tokens carry `version`."""
        self._check_version(version)
        self.weight_version = version

    def _check_version(self, version: int) -> None:
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError(f"version: must be an integer, got {version!r}")
        if version <= self.weight_version:
            raise ValueError(f"version: weight versions only increase; got {version} after "
                             f"{self.weight_version}")
