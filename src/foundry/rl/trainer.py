"""The trainer: GRPO updates on groups as they arrive, one optimizer step per batch.

`accumulate(groups)` back-propagates the *summed* loss of a micro-batch; `step(total_tokens)` divides the
accumulated gradients by the batch's token count, clips and steps. A batch streamed in any order and in
any micro-batches therefore gets the update of the batch taken at once (up to float summation order):
StreamRL's dynamic-batch pipelining with on-policy semantics ("exact" streaming).

Versions: the weights after `k` steps are version `k`. A stale token's behaviour logprob (the ratio's
denominator) is recomputed under the kept weights of the version that sampled it (the trainer keeps the
last `max_staleness + 1` versions and refuses a sample older than that), or with
`behaviour_logprobs="engine"` taken from the engine, which sent it with the sample.

With `pipeline` (RLHFuse's intra-stage fusion, PPO only) a micro-batch's update runs as the fused
actor/critic pipeline schedule (`fused_executor.run_schedule`): the inference stage first (behaviour
logprobs, reference logprobs, the critic's old values, GAE), then the actor's and the critic's stages
over micro-batches in the schedule's order. The gradients are the unfused ones (tests); in this one
process the stages run one task at a time, so the schedule's time saving needs its stages on separate
devices (`benchmarks/rl/fused_training.py` runs them as processes).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from foundry.llm.config import ModelConfig
from foundry.llm.models.llama import LlamaForCausalLM
from foundry.rl.config import PPOConfig
from foundry.rl.critic import Critic
from foundry.rl.fused import FusedConfig, Task
from foundry.rl.fused_executor import Batch, run_schedule
from foundry.rl.grpo import GRPOConfig, group_advantages, token_loss
from foundry.rl.model import token_logprobs
from foundry.rl.ppo import gae, value_loss
from foundry.rl.samples import Group

Weights = dict[str, torch.Tensor]


def clone_weights(model: torch.nn.Module) -> Weights:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


class Trainer:
    def __init__(self, cfg: ModelConfig, weights: Weights, grpo: GRPOConfig, lr: float = 1e-3,
                 max_staleness: int = 0, threads: int | None = None, reference: Weights | None = None,
                 max_grad_norm: float = 1.0, ppo: PPOConfig | None = None,
                 pipeline: tuple[int, int] | None = None) -> None:
        if threads is not None:
            torch.set_num_threads(threads)
        self.cfg, self.grpo, self.max_staleness, self.max_grad_norm = cfg, grpo, max_staleness, max_grad_norm
        self.model = LlamaForCausalLM(cfg)
        self.model.load_weights(weights)
        self.model.train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr, betas=(0.9, 0.99),
                                           weight_decay=0.0)
        self.version = 0
        self.snapshots: dict[int, Weights] = {0: clone_weights(self.model)}
        self.reference = reference if reference is not None else clone_weights(self.model)
        self.ppo, self.critic, self.critic_optimizer = ppo, None, None
        if ppo is not None:  # PPO: a critic beside the policy, its own optimizer
            self.critic = Critic.from_policy(cfg, weights)
            self.critic.train()
            self.critic_optimizer = torch.optim.AdamW(self.critic.parameters(), lr=ppo.critic_lr,
                                                      betas=(0.9, 0.99), weight_decay=0.0)
        self._batch = self._empty_sums()
        self.pipeline = pipeline  # (stages, micro-batches) of the fused actor/critic schedule, or None
        self._schedules: dict[tuple[int, int], tuple[FusedConfig, list[list[Task]]]] = {}
        if pipeline is not None and self.critic is None:
            raise ValueError("pipeline: intra-stage fusion fuses the actor's and the critic's training: "
                             "needs PPO")

    @staticmethod
    def _empty_sums() -> dict[str, float]:
        return {"loss": 0.0, "tokens": 0, "kl": 0.0, "clipped": 0.0, "samples": 0, "groups": 0, "busy_s": 0.0,
                "value_loss": 0.0}

    # ---- one batch ---------------------------------------------------------------------------
    def accumulate(self, groups: list[Group]) -> dict[str, float]:
        """Back-propagate the summed loss of these whole groups (gradients add up until `step`): GRPO's,
        or with a critic PPO's (GAE advantages per token, plus the value loss)."""
        if not groups:
            return {}
        start = time.perf_counter()
        samples = [(g, s) for g in groups for s in g.samples]
        for _, s in samples:
            if self.version - s.oldest_version > self.max_staleness:
                raise ValueError(f"staleness: a sample from version {s.oldest_version} reached the "
                                 f"trainer at version {self.version} (bound {self.max_staleness})")
        prompts = [g.prompt_ids for g, _ in samples]
        completions = [s.token_ids for _, s in samples]
        if self.pipeline is not None:
            self._accumulate_fused(groups, samples, prompts, completions)
            self._batch["busy_s"] += time.perf_counter() - start
            return {"tokens": sum(len(c) for c in completions)}
        lps = token_logprobs(self.model, prompts, completions)
        old = self._behaviour_logprobs(prompts, completions, [s.versions for _, s in samples], lps,
                                       [s.logprobs for _, s in samples])
        ref = None
        if self.grpo.kl_coef > 0:
            ref = self._reference_logprobs([s for _, s in samples], prompts, completions)
        advantages = self._advantages(groups, samples, prompts, completions)
        # one loss over every token of the micro-batch (each token carries its sample's advantage)
        per_token = torch.cat([a.reshape(-1) if isinstance(a, torch.Tensor) else torch.full((len(c),), a)
                               for (a, _), c in zip(advantages, completions, strict=True)])
        loss, stats = token_loss(torch.cat(lps), torch.cat(old), None if ref is None else torch.cat(ref),
                                 per_token, self.grpo)
        total = loss + sum((v for _, v in advantages), torch.zeros(()))
        self._batch["kl"] += stats["kl"]
        self._batch["clipped"] += stats["clipped"]
        total.backward()
        self._batch["loss"] += total.item()
        self._batch["tokens"] += sum(len(c) for c in completions)
        self._batch["samples"] += len(samples)
        self._batch["groups"] += len(groups)
        self._batch["busy_s"] += time.perf_counter() - start
        return {"tokens": sum(len(c) for c in completions)}

    def _accumulate_fused(self, groups: list[Group], samples: list[tuple[Group, Any]],
                          prompts: list[list[int]], completions: list[list[int]]) -> None:
        """PPO on a micro-batch as the fused actor/critic pipeline: inference stage, then the schedule."""
        assert self.critic is not None and self.ppo is not None and self.pipeline is not None
        ppo, sams = self.ppo, [s for _, s in samples]
        with torch.no_grad():  # the inference stage (a rollout worker may have run part of it already)
            current = token_logprobs(self.model, prompts, completions)
            old = self._behaviour_logprobs(prompts, completions, [s.versions for s in sams], current,
                                           [s.logprobs for s in sams])
            ref = (self._reference_logprobs(sams, prompts, completions) if self.grpo.kl_coef > 0 else None)
            missing = any(s.values is None for s in sams)
            computed = self.critic.values(prompts, completions) if missing else None
        old_v = [torch.tensor(s.values) if s.values is not None else computed[i] for i, s in enumerate(sams)]
        adv, ret = zip(*(gae(v, s.reward, ppo.gamma, ppo.lam) for v, s in zip(old_v, sams, strict=True)),
                       strict=True)

        def cat(xs: Any, idx: list[int]) -> torch.Tensor:
            return torch.cat([xs[i] for i in idx])

        def actor_loss(lp: torch.Tensor, idx: list[int]) -> torch.Tensor:
            loss, stats = token_loss(lp, cat(old, idx), None if ref is None else cat(ref, idx), cat(adv, idx),
                                     self.grpo)
            self._batch["kl"] += stats["kl"]
            self._batch["clipped"] += stats["clipped"]
            self._batch["loss"] += loss.item()
            return loss

        def critic_loss(v: torch.Tensor, idx: list[int]) -> torch.Tensor:
            loss = ppo.vf_coef * value_loss(v, cat(old_v, idx), cat(ret, idx), ppo.value_clip)
            self._batch["value_loss"] += loss.item()
            self._batch["loss"] += loss.item()
            return loss

        cfg, schedule = self._schedule(len(samples))
        run_schedule(cfg, schedule, self.model, self.critic, Batch(prompts, completions), actor_loss,
                     critic_loss)
        self._batch["tokens"] += sum(len(c) for c in completions)
        self._batch["samples"] += len(samples)
        self._batch["groups"] += len(groups)

    def _schedule(self, samples: int) -> tuple[FusedConfig, list[list[Task]]]:
        """The fused schedule for `pipeline` stages and micro-batches (fewer when the micro-batch has fewer
        samples): the search's greedy start, which the critic's tasks fill into the actor's bubbles
        (deterministic; the annealing's gains are in `foundry rl schedule`)."""
        from foundry.rl.fused import greedy_orders, tokens_to_tasks

        assert self.pipeline is not None
        stages, micro = self.pipeline[0], min(self.pipeline[1], samples)
        if (stages, micro) not in self._schedules:
            # actor and critic share the model class here: the critic's forward costs about the actor's
            cfg = FusedConfig(stages, stages, micro, micro, 1, 1)
            self._schedules[stages, micro] = cfg, tokens_to_tasks(cfg, greedy_orders(cfg, "actor"))
        return self._schedules[stages, micro]

    def _advantages(self, groups: list[Group], samples: list[tuple[Group, Any]], prompts: list[list[int]],
                    completions: list[list[int]]) -> list[tuple[torch.Tensor | float, torch.Tensor]]:
        """Per sample: its advantage (GRPO: one number; PPO: one per token) and its value-loss term."""
        zero = torch.zeros(())
        if self.critic is None or self.ppo is None:
            adv = {id(g): group_advantages(torch.tensor([s.reward for s in g.samples]),
                                           self.grpo.scale_rewards, self.grpo.eps) for g in groups}
            position = {id(s): j for g in groups for j, s in enumerate(g.samples)}
            return [(adv[id(g)][position[id(s)]].item(), zero) for g, s in samples]
        ppo, out = self.ppo, []
        values = self.critic.values(prompts, completions)
        for (_, s), v in zip(samples, values, strict=True):
            # on-policy values: the critic before this batch's update (the inference stage's, when a worker
            # ran it, else this forward's, detached: the same numbers)
            old_v = v.detach() if s.values is None else torch.tensor(s.values, dtype=v.dtype)
            adv, returns = gae(old_v, s.reward, ppo.gamma, ppo.lam)
            term = ppo.vf_coef * value_loss(v, old_v, returns, ppo.value_clip)
            self._batch["value_loss"] += term.item()
            out.append((adv, term))
        return out

    def reduce_gradients(self, total_tokens: int | None = None) -> None:
        """Turn the summed gradients into the batch mean over `total_tokens` (default: those seen)."""
        n = total_tokens if total_tokens is not None else self._batch["tokens"]
        if n <= 0:
            raise ValueError("step: no tokens were accumulated in this batch")
        for p in self._parameters():
            if p.grad is not None:
                p.grad /= n

    def _parameters(self) -> list[torch.nn.Parameter]:
        return [*self.model.parameters(), *(self.critic.parameters() if self.critic is not None else [])]

    def step(self, total_tokens: int | None = None) -> dict[str, float]:
        """Finish the batch: mean gradients, clip, one optimizer step; the weights become version + 1."""
        start = time.perf_counter()
        n = total_tokens if total_tokens is not None else self._batch["tokens"]
        self.reduce_gradients(n)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm).item()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.critic is not None and self.critic_optimizer is not None:
            torch.nn.utils.clip_grad_norm_(self.critic.parameters(), self.max_grad_norm)
            self.critic_optimizer.step()
            self.critic_optimizer.zero_grad(set_to_none=True)
        self.version += 1
        self.snapshots[self.version] = clone_weights(self.model)
        for v in [v for v in self.snapshots if v < self.version - self.max_staleness]:
            del self.snapshots[v]
        b, self._batch = self._batch, self._empty_sums()
        return {"version": self.version, "loss": b["loss"] / n, "kl": b["kl"] / n,
                "clip_fraction": b["clipped"] / n, "grad_norm": grad_norm, "tokens": n,
                "samples": b["samples"], "groups": b["groups"], "value_loss": b["value_loss"] / n,
                "busy_s": b["busy_s"] + time.perf_counter() - start}

    # ---- logprobs under other weights --------------------------------------------------------
    def _reference_logprobs(self, samples: list[Any], prompts: list[list[int]],
                            completions: list[list[int]]) -> list[torch.Tensor]:
        """Under the reference weights: the inference stage's numbers where a rollout worker sent them
        (inter-stage fusion), a forward here for the rest."""
        out: list[torch.Tensor | None] = [None if s.ref_logprobs is None else torch.tensor(s.ref_logprobs)
                                          for s in samples]
        rows = [i for i, x in enumerate(out) if x is None]
        if rows:
            with torch.no_grad():
                lps = self._logprobs_under(self.reference, [prompts[i] for i in rows],
                                           [completions[i] for i in rows])
            for i, lp in zip(rows, lps, strict=True):
                out[i] = lp
        return [x for x in out if x is not None]

    def _logprobs_under(self, weights: Weights, prompts: list[list[int]],
                        completions: list[list[int]]) -> list[torch.Tensor]:
        return token_logprobs(self.model, prompts, completions, weights=weights)

    def _behaviour_logprobs(self, prompts: list[list[int]], completions: list[list[int]],
                            versions: list[list[int]], current: list[torch.Tensor],
                            engine: list[list[float]] | None = None) -> list[torch.Tensor]:
        """Each token's logprob under the weights that sampled it: the current forward, detached, for
        on-policy tokens; for stale ones the engine's (`behaviour_logprobs="engine"`, when the sample
        carries them) or a recomputation under the kept weights of their version."""
        old = [lp.detach().clone() for lp in current]
        for v in sorted({x for vs in versions for x in vs} - {self.version}):
            rows = [i for i, vs in enumerate(versions) if v in vs]
            if self.grpo.behaviour_logprobs == "engine" and engine is not None:
                given = [i for i in rows if len(engine[i]) == len(completions[i])]
                for i in given:
                    mask = torch.tensor(versions[i]) == v
                    old[i][mask] = torch.tensor(engine[i], dtype=old[i].dtype)[mask]
                rows = [i for i in rows if i not in set(given)]
            if not rows:
                continue
            with torch.no_grad():
                lps = self._logprobs_under(self.snapshots[v], [prompts[i] for i in rows],
                                           [completions[i] for i in rows])
            for i, lp in zip(rows, lps, strict=True):
                mask = torch.tensor(versions[i]) == v
                old[i][mask] = lp[mask]
        return old

    # ---- weights out, checkpoints ------------------------------------------------------------
    def weights(self) -> Weights:
        return clone_weights(self.model)

    def critic_weights(self) -> Weights:
        """The critic's state (PPO), for the inference stage on the rollout workers."""
        if self.critic is None:
            raise ValueError("critic_weights: this trainer has no critic (algo grpo)")
        return {k: v.detach().clone() for k, v in self.critic.state_dict().items()}

    def state(self) -> dict[str, Any]:
        state = {"model": self.weights(), "optimizer": self.optimizer.state_dict(), "version": self.version,
                 "snapshots": self.snapshots, "reference": self.reference}
        if self.critic is not None and self.critic_optimizer is not None:
            state["critic"] = {k: v.detach().clone() for k, v in self.critic.state_dict().items()}
            state["critic_optimizer"] = self.critic_optimizer.state_dict()
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        self.model.load_weights(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.critic is not None and self.critic_optimizer is not None:
            self.critic.load_state_dict(state["critic"])
            self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.version, self.snapshots = state["version"], state["snapshots"]
        self.reference = state["reference"]

    def save(self, path: Path) -> None:
        torch.save(self.state(), path)

    def load(self, path: Path) -> None:
        self.load_state(torch.load(path, weights_only=True))
