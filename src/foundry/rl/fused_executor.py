"""Run a fused actor/critic pipeline schedule with real micro-batches (RLHFuse's intra-stage fusion).

The schedule search (`fused_pipeline`) decides, per node, the order of its tasks: forward or backward
of an actor micro-batch on the actor stage there, or of a critic micro-batch on the critic stage there
(the critic's replicas run the other way round). This module executes such a schedule on real models:
the actor is cut into `pp0` stages and each critic replica into `pp1` (`pipeline_stage.py`), a forward
passes the hidden states of its micro-batch to the next stage, a backward hands the gradient of its
input back, and the loss is PPO's, summed per micro-batch, so the accumulated gradients must equal one
whole-batch step of the sequential (unfused) training (tests: allclose 1e-5).

`run_schedule` simulates the nodes in one process: tasks run one at a time in an order that follows
every node's list and every dependency (what `check_schedule` proves possible), so the arithmetic is
the pipeline's while the timing is not. `run_node` is one node for real, as a process (or thread) that
exchanges activations and gradients with its neighbours over `torch.distributed` (gloo). Critic replicas
are data-parallel copies: their gradients are summed as an all-reduce would.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch

from foundry.llm.models.llama import LlamaForCausalLM
from foundry.rl.critic import Critic
from foundry.rl.fused import FusedConfig, Task
from foundry.rl.model import pack
from foundry.rl.pipeline_stage import PipelineStage, StageInputs, split_stages
from foundry.serve.elastic.comm import Comm

Loss = Callable[[torch.Tensor, list[int]], torch.Tensor]  # (stage output rows, sample indices) → summed loss


@dataclass(frozen=True)
class Batch:
    prompts: list[list[int]]
    completions: list[list[int]]

    def inputs(self, samples: list[int]) -> StageInputs:
        ids, positions, meta, rows = pack([self.prompts[i] for i in samples],
                                          [self.completions[i] for i in samples])
        targets = torch.tensor([t for i in samples for t in self.completions[i]])
        return StageInputs(ids, positions, meta, rows, targets)


def split_samples(n: int, parts: int) -> list[list[int]]:
    """`n` sample indices in `parts` contiguous micro-batches, as even as possible."""
    if not 1 <= parts <= n:
        raise ValueError(f"micro-batches: need 1..{n} micro-batches for {n} samples, got {parts}")
    bounds = [n * i // parts for i in range(parts + 1)]
    return [list(range(a, b)) for a, b in zip(bounds, bounds[1:], strict=False)]


def run_schedule(cfg: FusedConfig, schedule: list[list[Task]], actor: LlamaForCausalLM, critic: Critic,
                 batch: Batch, actor_loss: Loss, critic_loss: Loss) -> list[Critic]:
    """Execute `schedule` (per node, its tasks in order); gradients accumulate in `actor` and in one copy
    of `critic` per replica, which are returned (their gradients summed give the critic's)."""
    n = len(batch.prompts)
    actor_mbs = split_samples(n, cfg.m0)
    critic_mbs = split_samples(n, cfg.replicas * cfg.m1)  # replica r takes micro-batches r·m1 .. r·m1+m1-1
    replicas = [critic] + [copy.deepcopy(critic) for _ in range(cfg.replicas - 1)]
    stages = {0: [split_stages(actor, cfg.pp0)]} | {1: [split_stages(c, cfg.pp1) for c in replicas]}
    inputs: dict[tuple[int, int, int], StageInputs] = {}
    outputs: dict[Task, torch.Tensor] = {}  # a forward's output, kept for its backward
    received: dict[Task, torch.Tensor] = {}  # a forward's (leaf) input, whose gradient goes back
    done: set[Task] = set()
    pending = [list(order) for order in schedule]
    while any(pending):
        progressed = False
        for order in pending:
            while order and _ready(cfg, order[0], done):
                t = order.pop(0)
                samples = (actor_mbs[t.mb] if t.model == 0 else critic_mbs[t.replica * cfg.m1 + t.mb])
                key = (t.model, t.replica, t.mb)
                if key not in inputs:
                    inputs[key] = batch.inputs(samples)
                stage: PipelineStage = stages[t.model][t.replica][t.stage]
                if not t.backward:
                    x = None
                    if t.stage > 0:
                        x = outputs[t._replace(stage=t.stage - 1)].detach().requires_grad_(True)
                        received[t] = x
                    outputs[t] = stage(x, inputs[key])
                else:
                    fwd = t._replace(backward=False)
                    if stage.last:
                        loss_fn = actor_loss if t.model == 0 else critic_loss
                        loss_fn(outputs[fwd], samples).backward()
                    else:
                        nxt = fwd._replace(stage=t.stage + 1)
                        outputs[fwd].backward(received.pop(nxt).grad)
                    del outputs[fwd]  # its graph is spent
                done.add(t)
                progressed = True
        if not progressed:
            raise ValueError("schedule: no node can run its next task (a deadlock or a missing task)")
    return replicas


def _ready(cfg: FusedConfig, t: Task, done: set[Task]) -> bool:
    n_stages = cfg.pp0 if t.model == 0 else cfg.pp1
    if not t.backward:
        return t.stage == 0 or t._replace(stage=t.stage - 1) in done
    return t._replace(backward=False) in done and (t.stage == n_stages - 1
                                                   or t._replace(stage=t.stage + 1) in done)


def summed_critic_grads(replicas: list[Critic]) -> dict[str, torch.Tensor]:
    """The critic's gradient: the replicas' summed (the all-reduce of data-parallel copies)."""
    out: dict[str, torch.Tensor] = {}
    for c in replicas:
        for k, p in c.named_parameters():
            if p.grad is not None:
                out[k] = out[k] + p.grad if k in out else p.grad.clone()
    return out


def run_node(cfg: FusedConfig, node: int, order: list[Task], comm: Comm, actor: LlamaForCausalLM,
             critics: list[Critic], batch: Batch, actor_loss: Loss, critic_loss: Loss) -> None:
    """One node of the pipeline as its own process (or thread): run its tasks in order, receiving a
    forward's input from the previous stage's node and a backward's output gradient from the next one
    over `comm` (`torch.distributed` gloo between processes, queues between threads), and sending its
    own on. Messages are tagged by (model, replica, micro-batch, direction), so the actor's and the
    critic's traffic on one link cannot be confused. Gradients accumulate in this node's stages of
    `actor` and `critics` (one critic per replica)."""
    n = len(batch.prompts)
    actor_mbs, critic_mbs = split_samples(n, cfg.m0), split_samples(n, cfg.replicas * cfg.m1)
    stages = {0: [split_stages(actor, cfg.pp0)]} | {1: [split_stages(c, cfg.pp1) for c in critics]}
    hidden = {0: actor.config.hidden_size, 1: critics[0].value_head.in_features}  # what crosses a boundary
    outs: dict[Task, torch.Tensor] = {}
    ins: dict[Task, torch.Tensor] = {}
    sends = []
    for t in order:
        n_stages = cfg.pp0 if t.model == 0 else cfg.pp1
        samples = actor_mbs[t.mb] if t.model == 0 else critic_mbs[t.replica * cfg.m1 + t.mb]
        inp = batch.inputs(samples)
        stage = stages[t.model][t.replica][t.stage]
        fwd = t._replace(backward=False)
        if not t.backward:
            x = None
            if t.stage > 0:
                x = torch.empty(inp.ids.numel(), hidden[t.model])
                comm.irecv(x, cfg.node_of(t.model, t.replica, t.stage - 1), _tag(cfg, t, 0)).wait()
                ins[t] = x.requires_grad_(True)
            outs[t] = stage(x, inp)
            if t.stage < n_stages - 1:
                nxt = cfg.node_of(t.model, t.replica, t.stage + 1)
                sends.append(comm.isend(outs[t].detach(), nxt, _tag(cfg, t, 0)))
            continue
        out = outs.pop(fwd)
        if t.stage == n_stages - 1:
            (actor_loss if t.model == 0 else critic_loss)(out, samples).backward()
        else:
            grad = torch.empty_like(out)
            comm.irecv(grad, cfg.node_of(t.model, t.replica, t.stage + 1), _tag(cfg, t, 1)).wait()
            out.backward(grad)
        if t.stage > 0:
            x = ins.pop(fwd)
            sends.append(comm.isend(x.grad, cfg.node_of(t.model, t.replica, t.stage - 1), _tag(cfg, t, 1)))
    for w in sends:
        w.wait()


def _tag(cfg: FusedConfig, t: Task, backward: int) -> int:
    most = max(cfg.m0, cfg.m1)
    return ((t.model * cfg.replicas + t.replica) * most + t.mb) * 2 + backward
