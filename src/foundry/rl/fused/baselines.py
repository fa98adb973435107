"""Baselines and bounds of a fused pipeline: 1F1B orders, the sequential 1F1B makespan, the lower bound,
the bubble ratio."""

from __future__ import annotations

import math

from foundry.rl.fused.config import FusedConfig
from foundry.rl.fused.schedule import AB, AF, CB, CF, evaluate_tokens


def one_f_one_b(n_stages: int, stage: int, m: int, fwd: int, bwd: int) -> list[int]:
    """1F1B token order of one stage: warm-up forwards, then forward/backward pairs, then backwards."""
    warm = min(n_stages - stage - 1, m)
    order = [fwd] * warm
    for _ in range(m - warm):
        order += [fwd, bwd]
    return order + [bwd] * warm


def seq_1f1b_orders(cfg: FusedConfig) -> list[list[int]]:
    """Actor 1F1B then critic 1F1B on each node, as one token schedule (no barrier between them)."""
    out = []
    for n in range(cfg.nodes):
        a = one_f_one_b(cfg.pp0, n, cfg.m0, AF, AB)
        c = one_f_one_b(cfg.pp1, cfg.critic_stage(n), cfg.m1, CF, CB)
        out.append(a + c)
    return out


def seq_1f1b_makespan(cfg: FusedConfig) -> int:
    """The reference's "seq 1F1B": actor 1F1B, a barrier, then critic 1F1B, each list-scheduled."""
    only_actor = FusedConfig(cfg.pp0, cfg.pp1, cfg.m0, 0, cfg.f0, cfg.f1)
    only_critic = FusedConfig(cfg.pp0, cfg.pp1, 0, cfg.m1, cfg.f0, cfg.f1)
    a = evaluate_tokens(only_actor, [one_f_one_b(cfg.pp0, n, cfg.m0, AF, AB) for n in range(cfg.nodes)])
    c = evaluate_tokens(
        only_critic,
        [one_f_one_b(cfg.pp1, cfg.critic_stage(n), cfg.m1, CF, CB) for n in range(cfg.nodes)],
    )
    assert a is not None and c is not None
    return a[0] + c[0]


def lower_bound_terms(cfg: FusedConfig) -> dict[str, int]:
    """The four lower-bound terms; the bound is their max (see the module docs)."""
    f0, f1 = cfg.f0, cfg.f1
    crit = max((cfg.m0 + cfg.pp0 - 1) * 3 * f0, (cfg.m1 + cfg.pp1 - 1) * 3 * f1)
    work = cfg.node_work()
    avg = -(-cfg.total_work() // cfg.nodes)
    fill_drain = 0
    for n in range(cfg.nodes):
        j = cfg.critic_stage(n)
        # a node's first task waits for the forwards of the stages before it (of either model), and
        # after its last task (a backward) the backwards of the stages before it still run
        fill = min(n * f0 if cfg.m0 else math.inf, j * f1 if cfg.m1 else math.inf)
        drain = min(n * 2 * f0 if cfg.m0 else math.inf, j * 2 * f1 if cfg.m1 else math.inf)
        fill_drain = max(fill_drain, int(fill + drain) + work)
    return {"critical_path": crit, "average_work": avg, "node_work": work, "fill_drain_work": fill_drain}


def lower_bound(cfg: FusedConfig) -> int:
    return max(lower_bound_terms(cfg).values())


def bubble(cfg: FusedConfig, makespan: int) -> float:
    return 1.0 - cfg.total_work() / (cfg.nodes * makespan)

