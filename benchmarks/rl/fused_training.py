"""RLHFuse's fused actor/critic training step against RLHFuse-Base, on real processes.

One PPO training step (actor and critic, `--micro-batches` each) as a 2-stage pipeline: two processes,
one per core, each holding one actor stage and one critic stage (the critic runs the other way round),
exchanging activations and gradients over `torch.distributed` gloo (`rl.fused_executor.run_node`). Two
schedules of the same tasks on the same samples:

- base: RLHFuse-Base, the actor's 1F1B and then the critic's 1F1B on each node (sequential stages);
- fused: the schedule search's greedy fused order (the critic fills the actor's pipeline bubbles).

Printed: per schedule the median step time over `--iters` steps (after one warm-up), the unit-time
makespans the schedule model predicts for the same orders, and whether both schedules' gradients
equal one whole-batch step's (each tensor's largest difference within 1e-5 of its largest entry).

    OMP_NUM_THREADS=1 python benchmarks/rl/fused_training.py [--micro-batches 8] [--iters 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import time

import torch
import torch.multiprocessing as mp

from foundry.llm.config import ModelConfig
from foundry.llm.loader import build_model
from foundry.rl.config import GRPOConfig
from foundry.rl.critic import Critic
from foundry.rl.fused import FusedConfig, evaluate_tokens, greedy_orders, seq_1f1b_orders, tokens_to_tasks
from foundry.rl.fused_executor import Batch, run_node
from foundry.rl.grpo import token_loss
from foundry.rl.model import token_logprobs
from foundry.rl.ppo import value_loss
from foundry.serve.elastic.comm import GlooComm

ACTOR = ModelConfig(vocab_size=256, hidden_size=192, intermediate_size=512, num_layers=4, num_heads=4,
                    num_kv_heads=2, max_position_embeddings=256)
CRITIC = ModelConfig(vocab_size=256, hidden_size=128, intermediate_size=352, num_layers=2, num_heads=4,
                     num_kv_heads=2, max_position_embeddings=256)


def problem(samples: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    def tokens(lo: int, hi: int) -> list[int]:
        n = int(torch.randint(lo, hi, (1,), generator=g))
        return torch.randint(0, 256, (n,), generator=g).tolist()

    prompts = [tokens(16, 48) for _ in range(samples)]
    completions = [tokens(8, 96) for _ in range(samples)]
    actor = build_model(ACTOR, seed=1)
    critic = Critic.from_policy(CRITIC, build_model(CRITIC, seed=2).state_dict())  # the same in every process
    torch.nn.init.normal_(critic.value_head.weight, std=0.1, generator=g)
    with torch.no_grad():
        lps = token_logprobs(actor, prompts, completions)
        old = [lp + 0.1 * torch.randn(lp.shape, generator=g) for lp in lps]
        old_v = [v.detach().clone() for v in critic.values(prompts, completions)]
    adv = [torch.randn(len(c), generator=g) for c in completions]
    ret = [torch.randn(len(c), generator=g) for c in completions]

    def cat(xs, idx):
        return torch.cat([xs[i] for i in idx])

    grpo = GRPOConfig(clip=0.2, kl_coef=0.0)

    def actor_loss(lp, idx):
        return token_loss(lp, cat(old, idx), None, cat(adv, idx), grpo)[0]

    def critic_loss(v, idx):
        return value_loss(v, cat(old_v, idx), cat(ret, idx), 0.2)

    return Batch(prompts, completions), actor, critic, actor_loss, critic_loss


def node(rank: int, cfg: FusedConfig, samples: int, iters: int, port: int, results) -> None:
    torch.set_num_threads(1)
    batch, actor, critic, al, cl = problem(samples)
    comm = GlooComm(rank, cfg.nodes, f"tcp://127.0.0.1:{port}")
    schedules = {"base": tokens_to_tasks(cfg, seq_1f1b_orders(cfg)),
                 "fused": tokens_to_tasks(cfg, greedy_orders(cfg))}
    times: dict[str, list[float]] = {k: [] for k in schedules}
    grads: dict[str, dict] = {}
    for it in range(iters + 1):
        for name, sched in schedules.items():
            actor.zero_grad()
            critic.zero_grad()
            comm.dist.barrier()
            start = time.perf_counter()
            run_node(cfg, rank, sched[rank], comm, actor, [critic], batch, al, cl)
            comm.dist.barrier()
            if it:  # the first round warms up
                times[name].append(time.perf_counter() - start)
            grads[name] = {f"{m}.{k}": p.grad.numpy().copy()
                           for m, mod in (("actor", actor), ("critic", critic))
                           for k, p in mod.named_parameters() if p.grad is not None}
    results.put((rank, times, grads))
    comm.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--micro-batches", type=int, default=8)
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    # unit-time model: an actor micro-batch's forward ~ 2x the critic's (the sizes above); two nodes
    cfg = FusedConfig(2, 2, args.micro_batches, args.micro_batches, 2, 1)
    batch, actor, critic, al, cl = problem(args.samples)
    everyone = list(range(args.samples))
    al(torch.cat(token_logprobs(actor, batch.prompts, batch.completions)), everyone).backward()
    cl(torch.cat(critic.values(batch.prompts, batch.completions)), everyone).backward()
    want = {f"{m}.{k}": p.grad for m, mod in (("actor", actor), ("critic", critic))
            for k, p in mod.named_parameters() if p.grad is not None}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=node, args=(r, cfg, args.samples, args.iters, port, results))
             for r in range(cfg.nodes)]
    for p in procs:
        p.start()
    parts = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(30)
    out = {"config": vars(args), "schedules": {}}
    for name in ("base", "fused"):
        step = [max(ts) for ts in zip(*(t[name] for _, t, _ in parts), strict=True)]  # a step ends on both
        summed: dict[str, torch.Tensor] = {}
        for _, _, g in parts:
            for k, v in g[name].items():
                summed[k] = summed[k] + torch.from_numpy(v) if k in summed else torch.from_numpy(v)
        # each tensor's largest difference relative to its largest entry (float sums in another order)
        worst = max(((summed[k] - want[k]).abs().max() / want[k].abs().max().clamp_min(1e-12)).item()
                    for k in want if k in summed)
        same = set(summed) == set(want) and worst <= 1e-5
        orders = seq_1f1b_orders(cfg) if name == "base" else greedy_orders(cfg)
        out["schedules"][name] = {"median_step_s": statistics.median(step), "steps_s": step,
                                  "unit_makespan": evaluate_tokens(cfg, orders)[0],
                                  "gradients_equal_whole_batch": same, "worst_relative_grad_diff": worst}
    b, f = out["schedules"]["base"], out["schedules"]["fused"]
    out["speedup"] = b["median_step_s"] / f["median_step_s"]
    out["predicted_speedup"] = b["unit_makespan"] / f["unit_makespan"]
    if args.json:
        print(json.dumps(out))
    else:
        for name, r in out["schedules"].items():
            print(f"{name:>6}: step {r['median_step_s']:.3f} s (median of {len(r['steps_s'])}), "
                  f"unit makespan {r['unit_makespan']}, "
                  f"gradients equal the whole-batch step's: {r['gradients_equal_whole_batch']} "
                  f"(worst relative difference {r['worst_relative_grad_diff']:.1e})")
        print(f"fused / base: {out['speedup']:.2f}x measured, {out['predicted_speedup']:.2f}x predicted")


if __name__ == "__main__":
    main()
