"""A fused actor/critic schedule run on real models gives one sequential PPO step's gradients."""

import pytest
import torch

from foundry.llm.config import ModelConfig
from foundry.llm.loader import build_model
from foundry.rl.config import GRPOConfig
from foundry.rl.critic import Critic
from foundry.rl.fused import (
    FusedConfig,
    evaluate_schedule,
    greedy_orders,
    seq_1f1b_orders,
    tokens_to_tasks,
)
from foundry.rl.fused_executor import Batch, run_schedule, split_samples, summed_critic_grads
from foundry.rl.grpo import token_loss
from foundry.rl.model import token_logprobs
from foundry.rl.ppo import value_loss

CFG = ModelConfig(vocab_size=53, hidden_size=32, intermediate_size=64, num_layers=4, num_heads=4,
                  num_kv_heads=2, max_position_embeddings=64)
CRITIC_CFG = ModelConfig(vocab_size=53, hidden_size=16, intermediate_size=32, num_layers=4, num_heads=2,
                         num_kv_heads=1, max_position_embeddings=64)


def _ppo_problem(n: int):
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(0, 53, (int(torch.randint(2, 6, (1,), generator=g)),), generator=g).tolist()
               for _ in range(n)]
    completions = [torch.randint(0, 53, (int(torch.randint(1, 5, (1,), generator=g)),), generator=g).tolist()
                   for _ in range(n)]
    actor = build_model(CFG, seed=1)
    # smaller than the actor (its activations have another width), built from seeded weights: every process
    # of the gloo test builds the same one
    critic = Critic.from_policy(CRITIC_CFG, build_model(CRITIC_CFG, seed=2).state_dict())
    torch.nn.init.normal_(critic.value_head.weight, std=0.1, generator=g)
    with torch.no_grad():  # behaviour logprobs a little off the current ones: some ratios clip
        lps = token_logprobs(actor, prompts, completions)
        old = [lp + 0.3 * torch.randn(lp.shape, generator=g) for lp in lps]
        old_v = [v + 0.1 * torch.randn(v.shape, generator=g) for v in critic.values(prompts, completions)]
    adv = [torch.randn(len(c), generator=g) for c in completions]
    ret = [torch.randn(len(c), generator=g) for c in completions]
    cat = lambda xs, idx: torch.cat([xs[i] for i in idx])  # noqa: E731
    grpo = GRPOConfig(clip=0.2, kl_coef=0.0)
    actor_loss = lambda lp, idx: token_loss(lp, cat(old, idx), None, cat(adv, idx), grpo)[0]  # noqa: E731
    critic_loss = lambda v, idx: value_loss(v, cat(old_v, idx), cat(ret, idx), 0.2)  # noqa: E731
    return Batch(prompts, completions), actor, critic, actor_loss, critic_loss


def _grads(m):
    return {k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None}


def _sequential_grads(batch, actor, critic, actor_loss, critic_loss):
    """The oracle: one whole-batch step of each model, unfused (the models' gradients are reset after)."""
    everyone = list(range(len(batch.prompts)))
    actor_loss(torch.cat(token_logprobs(actor, batch.prompts, batch.completions)), everyone).backward()
    critic_loss(torch.cat(critic.values(batch.prompts, batch.completions)), everyone).backward()
    want = _grads(actor), _grads(critic)
    actor.zero_grad()
    critic.zero_grad()
    return want


@pytest.mark.parametrize("cfg", [FusedConfig(4, 2, 4, 2, 2, 1), FusedConfig(4, 4, 2, 4, 2, 2),
                                 FusedConfig(2, 1, 3, 3, 1, 1)])
@pytest.mark.parametrize("which", ["fused-greedy", "sequential-1f1b"])
def test_a_fused_schedule_gives_the_sequential_ppo_steps_gradients(cfg, which):
    n = 12
    batch, actor, critic, actor_loss, critic_loss = _ppo_problem(n)
    want_actor, want_critic = _sequential_grads(batch, actor, critic, actor_loss, critic_loss)
    orders = greedy_orders(cfg) if which == "fused-greedy" else seq_1f1b_orders(cfg)
    schedule = tokens_to_tasks(cfg, orders)
    evaluate_schedule(cfg, schedule)  # a valid schedule (raises otherwise)
    replicas = run_schedule(cfg, schedule, actor, critic, batch, actor_loss, critic_loss)
    got_actor, got_critic = _grads(actor), summed_critic_grads(replicas)
    assert set(got_actor) == set(want_actor) and set(got_critic) == set(want_critic)
    for k in want_actor:
        torch.testing.assert_close(got_actor[k], want_actor[k], rtol=1e-5, atol=1e-6, msg=k)
    for k in want_critic:
        torch.testing.assert_close(got_critic[k], want_critic[k], rtol=1e-5, atol=1e-6, msg=k)


def test_a_deadlocked_schedule_is_refused():
    cfg = FusedConfig(2, 1, 1, 1, 1, 1)
    batch, actor, critic, al, cl = _ppo_problem(4)
    schedule = tokens_to_tasks(cfg, greedy_orders(cfg))
    schedule[0] = list(reversed(schedule[0]))  # node 0 starts with a backward before its forward
    with pytest.raises(ValueError, match="deadlock"):
        run_schedule(cfg, schedule, actor, critic, batch, al, cl)


def test_split_samples():
    assert split_samples(5, 2) == [[0, 1], [2, 3, 4]]
    with pytest.raises(ValueError, match="micro-batches"):
        split_samples(2, 3)


def _run_nodes_in_threads(cfg, schedule, actor, replicas, batch, al, cl):
    from concurrent.futures import ThreadPoolExecutor

    from foundry.rl.fused_executor import run_node
    from foundry.serve.elastic.comm import ThreadHub

    hub = ThreadHub(cfg.nodes)
    with ThreadPoolExecutor(cfg.nodes) as pool:
        futures = [pool.submit(run_node, cfg, node, schedule[node], hub.comm(node), actor, replicas, batch,
                               al, cl) for node in range(cfg.nodes)]
        for f in futures:
            f.result()


@pytest.mark.parametrize("cfg", [FusedConfig(4, 2, 4, 2, 2, 1), FusedConfig(2, 2, 3, 3, 1, 1)])
def test_nodes_exchanging_activations_and_gradients_give_the_sequential_gradients(cfg):
    """Each node its own thread, tensors over tagged point-to-point channels (the same code as gloo
    between processes): the fused schedule still gives the sequential PPO step's gradients."""
    import copy

    n = 10
    batch, actor, critic, actor_loss, critic_loss = _ppo_problem(n)
    want_actor, want_critic = _sequential_grads(batch, actor, critic, actor_loss, critic_loss)
    replicas = [critic] + [copy.deepcopy(critic) for _ in range(cfg.replicas - 1)]
    schedule = tokens_to_tasks(cfg, greedy_orders(cfg))
    _run_nodes_in_threads(cfg, schedule, actor, replicas, batch, actor_loss, critic_loss)
    got_actor, got_critic = _grads(actor), summed_critic_grads(replicas)
    for k in want_actor:
        torch.testing.assert_close(got_actor[k], want_actor[k], rtol=1e-5, atol=1e-6, msg=k)
    for k in want_critic:
        torch.testing.assert_close(got_critic[k], want_critic[k], rtol=1e-5, atol=1e-6, msg=k)


def _gloo_node(rank: int, cfg, port: int, results) -> None:  # a spawned process: one pipeline node
    import copy

    from foundry.rl.fused_executor import run_node
    from foundry.serve.elastic.comm import GlooComm

    torch.set_num_threads(1)
    batch, actor, critic, actor_loss, critic_loss = _ppo_problem(10)
    replicas = [critic] + [copy.deepcopy(critic) for _ in range(cfg.replicas - 1)]
    comm = GlooComm(rank, cfg.nodes, f"tcp://127.0.0.1:{port}")
    run_node(cfg, rank, tokens_to_tasks(cfg, greedy_orders(cfg))[rank], comm, actor, replicas, batch,
             actor_loss, critic_loss)
    as_arrays = lambda gs: {k: g.numpy() for k, g in gs.items()}  # noqa: E731 (plain pickles, no shared fds)
    results.put((rank, as_arrays(_grads(actor)), [as_arrays(_grads(c)) for c in replicas]))
    comm.close()


def test_two_processes_over_gloo_give_the_sequential_gradients():
    import socket

    import torch.multiprocessing as mp

    cfg = FusedConfig(2, 2, 2, 2, 1, 1)  # actor 0→1 and critic 1→0: both directions on the one link
    batch, actor, critic, actor_loss, critic_loss = _ppo_problem(10)
    want_actor, want_critic = _sequential_grads(batch, actor, critic, actor_loss, critic_loss)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_gloo_node, args=(r, cfg, port, results)) for r in range(cfg.nodes)]
    for p in procs:
        p.start()
    parts = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    got_actor: dict = {}
    got_critic: dict = {}
    for _, a, cs in parts:  # each node holds its own stages' gradients; replicas and nodes add up
        for src, dst in [(a, got_actor)] + [(c, got_critic) for c in cs]:
            for k, g in src.items():
                g = torch.from_numpy(g)
                dst[k] = dst[k] + g if k in dst else g
    assert set(got_actor) == set(want_actor) and set(got_critic) == set(want_critic)
    for k in want_actor:
        torch.testing.assert_close(got_actor[k], want_actor[k], rtol=1e-5, atol=1e-6, msg=k)
    for k in want_critic:
        torch.testing.assert_close(got_critic[k], want_critic[k], rtol=1e-5, atol=1e-6, msg=k)
