"""A rollout worker: one engine instance over its own copy of the policy, generating groups of `n`
samples per prompt and handing each group back the moment its last sample finishes.

Run it in-process or as a Ray actor (`ray.remote(RolloutWorker)`): its methods are plain. Weight
updates are applied between `generate` calls (an actor runs its calls in order), so requests in flight
when new weights are published finish on the weights they started with ("drain first"); every token
still records its version.

RLHFuse's inter-stage fusion uses three more calls: `preempt` (a signal, run beside `generate`) makes the
generation in flight hand back its unfinished samples (`Preempted`: each with its sampler stream and its
KV, or for recompute) instead of finishing them; `resume` continues such samples here, and `infer` runs
the inference stage (reference logprobs, and the critic's values under PPO) on finished samples.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from foundry.config_cli import replace
from foundry.llm.config import ModelConfig
from foundry.llm.models.llama import LlamaForCausalLM
from foundry.rl.critic import Critic
from foundry.rl.model import policy_tokenizer, token_logprobs
from foundry.rl.samples import Group, Sample
from foundry.rl.tasks import Prompt, make_task
from foundry.serve.config import EngineConfig
from foundry.serve.engine import LLMEngine, MigratedRequest
from foundry.serve.sampling_params import SamplingParams, sample_request_ids


@dataclass(frozen=True)
class GenerationDone:
    batch: int
    worker: int
    busy_s: float


@dataclass(frozen=True)
class SampleDone:
    """One sample of the batch finished (the controller counts them against the fusion threshold)."""

    batch: int
    worker: int


@dataclass
class PartialGroup:
    """A prompt whose samples are not all finished, on its way to another worker."""

    index: int
    prompt: Prompt
    prompt_ids: list[int]
    params: SamplingParams  # the prompt's, all `n` samples
    finished: dict[str, Sample] = field(default_factory=dict)  # sample request id -> sample
    running: list[MigratedRequest] = field(default_factory=list)  # unfinished samples, state and KV
    restart: bool = False  # its prompt was never computed: the survivor adds it afresh (same seeds)

    @property
    def unfinished(self) -> int:
        return self.params.n - len(self.finished)


@dataclass
class Preempted:
    """What `preempt` made a generation hand back: its unfinished prompts."""

    batch: int
    worker: int
    partials: list[PartialGroup]


@dataclass(frozen=True)
class Inference:
    """The inference stage's results for one sample: reference logprobs and, under PPO, the critic's
    values (the state before each completion token)."""

    ref_logprobs: list[float]
    values: list[float] | None


class RolloutWorker:
    def __init__(self, worker_id: int, cfg: ModelConfig, weights: dict[str, torch.Tensor], task: str,
                 max_num_seqs: int = 64, threads: int = 1, seed: int = 0,
                 max_new_tokens: int | None = None) -> None:
        torch.set_num_threads(threads)
        self.worker_id, self.task = worker_id, make_task(task)
        self.max_new_tokens = max_new_tokens or self.task.max_new_tokens  # the generation cap
        self.tokenizer = policy_tokenizer()
        self.model = LlamaForCausalLM(cfg)
        self.model.load_weights(weights)
        self.model.eval()
        self.version = 0
        self.engine = self._engine(max_num_seqs, seed)
        self.reference = {k: v.clone() for k, v in weights.items()}  # the inference stage's reference
        self.critic: Critic | None = None  # PPO's, when `update_critic` sent one
        self._preempt = threading.Event()
        self._inbox: list[PartialGroup] = []  # adopted prompts the running generation takes up
        self._inbox_lock = threading.Lock()
        self._running = False

    def _engine(self, max_num_seqs: int, seed: int) -> LLMEngine:
        cfg = self.model.config
        config = EngineConfig(max_model_len=cfg.max_position_embeddings, seed=seed, max_num_seqs=max_num_seqs,
                              max_num_batched_tokens=max(2048, cfg.max_position_embeddings))
        return LLMEngine(config, model=self.model, tokenizer=self.tokenizer, model_name="policy")

    def update_weights(self, weights: dict[str, torch.Tensor], version: int) -> int:
        self.engine.load_weights(weights, version)
        self.version = version
        return version

    def update_critic(self, weights: dict[str, torch.Tensor]) -> None:
        """The trainer's critic (PPO), for `infer`."""
        if self.critic is None:
            self.critic = Critic(self.model.config)
            self.critic.eval()
        self.critic.load_state_dict(weights)

    def preempt(self) -> None:
        """Ask the generation in flight to hand back its unfinished samples (a signal: it runs beside
        `generate`/`resume`, which check it between engine steps)."""
        self._preempt.set()

    def adopt(self, partials: list[PartialGroup]) -> bool:
        """Hand prompts (`Preempted` elsewhere) to the generation running here, which continues them
        from its next step (a signal). False when no generation is running: `resume` them instead."""
        with self._inbox_lock:
            if not self._running:
                return False
            self._inbox.extend(partials)
            return True

    def set_max_batch(self, max_num_seqs: int) -> None:
        """The batch cap the dispatcher chose for this instance (small for long tails)."""
        if max_num_seqs != self.engine.config.scheduler.max_num_seqs:
            version = self.engine.weight_version
            self.engine = self.engine.rebuilt(replace(self.engine.config, max_num_seqs=max_num_seqs))
            if version:
                self.engine.set_weight_version(version)

    def generate(self, batch: int, items: list[tuple[int, Prompt]], n: int, temperature: float = 1.0,
                 seed: int = 0, progress: bool = False, migrate_kv: bool = True
                 ) -> Iterator[Group | GenerationDone | SampleDone | Preempted]:
        """Yield each prompt's group of `n` samples as soon as it is complete. `items` are (index in the
        batch, prompt) in admission order; sample j of prompt i is seeded `seed + 1000 * i + j`. The last
        item says the call ended and how long it computed. With `progress`, a `SampleDone` per finished
        sample; after `preempt`, a `Preempted` with the unfinished prompts (their samples' KV moves with
        them when `migrate_kv`, else they recompute it) and then the end."""
        start = time.perf_counter()
        self._preempt.clear()
        partials = []
        for index, prompt in items:
            ids = self.tokenizer.encode(prompt.text, add_special_tokens=False)
            params = SamplingParams(n=n, max_tokens=self.max_new_tokens, temperature=temperature,
                                    seed=seed + 1000 * index, return_output_logprobs=True)
            partials.append(PartialGroup(index, prompt, ids, params, restart=True))
        yield from self._run(batch, partials, start, progress, migrate_kv)

    def resume(self, batch: int, partials: list[PartialGroup], progress: bool = False,
               migrate_kv: bool = True) -> Iterator[Group | GenerationDone | SampleDone | Preempted]:
        """Continue prompts another worker handed back (`Preempted`): each unfinished sample goes on from
        its tokens with its own sampler stream, so it ends as it would have there."""
        start = time.perf_counter()
        self._preempt.clear()
        yield from self._run(batch, partials, start, progress, migrate_kv)

    def _run(self, batch: int, partials: list[PartialGroup], start: float, progress: bool, migrate_kv: bool
             ) -> Iterator[Group | GenerationDone | SampleDone | Preempted]:
        pending: dict[str, PartialGroup] = {}
        owner: dict[str, str] = {}
        with self._inbox_lock:
            self._running, self._inbox = True, list(partials)
        while True:
            with self._inbox_lock:
                arrived, self._inbox = self._inbox, []
                if not arrived and not pending:
                    self._running = False
                    break
            for pg in arrived:
                rid = f"b{batch}-p{pg.index}"
                if pg.restart:
                    self.engine.add_request(rid, pg.prompt_ids, pg.params)
                for m in pg.running:
                    self.engine.migrate_in(m)
                pending[rid] = pg
                owner.update((sid, rid) for sid in sample_request_ids(rid, pg.params.n))
                if not pg.unfinished:  # (a prompt may arrive with its last samples done)
                    yield self._group(batch, rid, pending.pop(rid))
            if not pending:
                continue
            if self._preempt.is_set():
                with self._inbox_lock:
                    self._running = False  # (prompts adopted meanwhile go back too)
                    taken, self._inbox = self._inbox, []
                back = [self._hand_back(rid, pg, migrate_kv) for rid, pg in pending.items()]
                yield Preempted(batch, self.worker_id, back + taken)
                break
            for out in self.engine.step():
                if not out.finished:
                    continue
                rid = owner[out.request_id]
                pg = pending[rid]
                text = self.tokenizer.decode([t for t in out.output_token_ids
                                              if t != self.tokenizer.eos_token_id])
                pg.finished[out.request_id] = Sample(
                    token_ids=list(out.output_token_ids), logprobs=list(out.output_logprobs or []),
                    versions=list(out.weight_versions), text=text, reward=self.task.reward(pg.prompt, text),
                    correct=self.task.is_correct(pg.prompt, text), finish_reason=out.finish_reason or "")
                if progress:
                    yield SampleDone(batch, self.worker_id)
                if not pg.unfinished:
                    yield self._group(batch, rid, pending.pop(rid))
        self._preempt.clear()
        yield GenerationDone(batch, self.worker_id, time.perf_counter() - start)

    def _group(self, batch: int, rid: str, pg: PartialGroup) -> Group:
        samples = [pg.finished[sid] for sid in sample_request_ids(rid, pg.params.n)]
        return Group(batch, pg.index, pg.prompt, pg.prompt_ids, samples, self.worker_id, time.monotonic())

    def _hand_back(self, rid: str, pg: PartialGroup, migrate_kv: bool) -> PartialGroup:
        """Take a prompt's unfinished samples out of the engine. A prompt not yet computed (its samples
        still wait for it) leaves whole and starts afresh elsewhere: its seeds give the same samples."""
        ids = [sid for sid in sample_request_ids(rid, pg.params.n) if sid not in pg.finished]
        if self.engine.prompt_pending(rid) or not any(self.engine.has_request(sid) for sid in ids):
            self.engine.abort_request(rid)
            return PartialGroup(pg.index, pg.prompt, pg.prompt_ids, pg.params, restart=True)
        running = [self.engine.migrate_out(sid, keep_kv=migrate_kv) for sid in ids]
        return PartialGroup(pg.index, pg.prompt, pg.prompt_ids, pg.params, dict(pg.finished), running)

    def infer(self, groups: list[Group]) -> list[list[Inference]]:
        """The inference stage on finished groups: per sample, its completion's logprobs under the
        reference weights and, when a critic was sent, the critic's values — what the trainer would
        otherwise compute itself (the same functions, so they agree to float rounding)."""
        prompts = [g.prompt_ids for g in groups for _ in g.samples]
        completions = [s.token_ids for g in groups for s in g.samples]
        with torch.no_grad():
            ref = token_logprobs(self.model, prompts, completions, weights=self.reference)
            values = self.critic.values(prompts, completions) if self.critic is not None else None
        flat = [Inference(r.tolist(), None if values is None else values[i].tolist())
                for i, r in enumerate(ref)]
        out, i = [], 0
        for g in groups:
            out.append(flat[i:i + len(g.samples)])
            i += len(g.samples)
        return out

    def evaluate(self, prompts: list[Prompt]) -> dict[str, float]:
        """Greedy answers to held-out prompts: mean reward and exact-match rate."""
        ids = [self.tokenizer.encode(p.text, add_special_tokens=False) for p in prompts]
        outs = self.engine.generate(ids, SamplingParams(max_tokens=self.max_new_tokens, temperature=0.0))
        texts = [self.tokenizer.decode([t for t in o.output_token_ids if t != self.tokenizer.eos_token_id])
                 for o in outs]
        pairs = list(zip(prompts, texts, strict=True))
        return {"reward": sum(self.task.reward(p, t) for p, t in pairs) / len(pairs),
                "exact": sum(self.task.is_correct(p, t) for p, t in pairs) / len(pairs)}

    def decode_latency(self, batch_sizes: list[int], steps: int = 8) -> dict[int, float]:
        """Measured seconds per decode step at each batch size (the dispatcher's PTL(BS)): the median of
        `steps` pure-decode steps of that many requests, on a scratch engine over the same model."""
        scratch = self.engine.rebuilt(replace(self.engine.config, max_num_seqs=max(batch_sizes)))
        prompt = self.tokenizer.encode(self.task.sample(random.Random(0)).text,
                                       add_special_tokens=False)
        out = {}
        for b in batch_sizes:
            scratch.iteration_records.clear()
            scratch.generate([prompt] * b, SamplingParams(max_tokens=steps + 1, temperature=0.0,
                                                          ignore_eos=True))
            times = sorted(r.elapsed for r in scratch.iteration_records
                           if r.num_decode_tokens == b and r.num_prefill_tokens == 0)
            out[b] = times[len(times) // 2]
        return out
