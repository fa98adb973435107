"""A rollout worker: one engine instance over its own copy of the policy, generating groups of `n`
samples per prompt and handing each group back the moment its last sample finishes.

Run it in-process or as a Ray actor (`ray.remote(RolloutWorker)`): its methods are plain. Weight
updates are applied between `generate` calls (an actor runs its calls in order), so requests in flight
when new weights are published finish on the weights they started with ("drain first"); every token
still records its version.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from foundry.config_cli import replace
from foundry.llm.config import ModelConfig
from foundry.llm.models.llama import LlamaForCausalLM
from foundry.rl.model import policy_tokenizer
from foundry.rl.samples import Group, Sample
from foundry.rl.tasks import Prompt, make_task
from foundry.serve.config import EngineConfig
from foundry.serve.engine import LLMEngine
from foundry.serve.sampling_params import SamplingParams, sample_request_ids


@dataclass(frozen=True)
class GenerationDone:
    batch: int
    worker: int
    busy_s: float


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

    def _engine(self, max_num_seqs: int, seed: int) -> LLMEngine:
        cfg = self.model.config
        config = EngineConfig(max_model_len=cfg.max_position_embeddings, seed=seed, max_num_seqs=max_num_seqs,
                              max_num_batched_tokens=max(2048, cfg.max_position_embeddings))
        return LLMEngine(config, model=self.model, tokenizer=self.tokenizer, model_name="policy")

    def update_weights(self, weights: dict[str, torch.Tensor], version: int) -> int:
        self.engine.load_weights(weights, version)
        self.version = version
        return version

    def set_max_batch(self, max_num_seqs: int) -> None:
        """The batch cap the dispatcher chose for this instance (small for long tails)."""
        if max_num_seqs != self.engine.config.scheduler.max_num_seqs:
            version = self.engine.weight_version
            self.engine = self.engine.rebuilt(replace(self.engine.config, max_num_seqs=max_num_seqs))
            if version:
                self.engine.set_weight_version(version)

    def generate(self, batch: int, items: list[tuple[int, Prompt]], n: int, temperature: float = 1.0,
                 seed: int = 0) -> Iterator[Group | GenerationDone]:
        """Yield each prompt's group of `n` samples as soon as it is complete. `items` are (index in the
        batch, prompt) in admission order; sample j of prompt i is seeded `seed + 1000 * i + j`. The last
        item says the call ended and how long it computed."""
        start = time.perf_counter()
        pending: dict[str, tuple[int, Prompt, list[int]]] = {}
        finished: dict[str, dict[str, Sample]] = {}
        for index, prompt in items:
            rid = f"b{batch}-p{index}"
            ids = self.tokenizer.encode(prompt.text, add_special_tokens=False)
            params = SamplingParams(n=n, max_tokens=self.max_new_tokens, temperature=temperature,
                                    seed=seed + 1000 * index, return_output_logprobs=True)
            self.engine.add_request(rid, ids, params)
            pending[rid] = (index, prompt, ids)
            finished[rid] = {}
        owner = {sid: rid for rid in pending for sid in sample_request_ids(rid, n)}
        while pending:
            for out in self.engine.step():
                if not out.finished:
                    continue
                rid = owner[out.request_id]
                index, prompt, ids = pending[rid]
                text = self.tokenizer.decode([t for t in out.output_token_ids
                                              if t != self.tokenizer.eos_token_id])
                finished[rid][out.request_id] = Sample(
                    token_ids=list(out.output_token_ids), logprobs=list(out.output_logprobs or []),
                    versions=list(out.weight_versions), text=text, reward=self.task.reward(prompt, text),
                    correct=self.task.is_correct(prompt, text), finish_reason=out.finish_reason or "")
                if len(finished[rid]) == n:
                    samples = [finished[rid][sid] for sid in sample_request_ids(rid, n)]
                    del pending[rid]
                    yield Group(batch, index, prompt, ids, samples, self.worker_id, time.monotonic())
        yield GenerationDone(batch, self.worker_id, time.perf_counter() - start)

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
