"""The elastic cluster end to end: a scheduler's plans run on real instances (threads), every step
checked for KV conservation, and the tokens equal greedy decoding of one dense model."""

import random

import pytest

from foundry.serve.elastic.cluster import ElasticCluster
from foundry.serve.elastic.cost_model import ESPCostModel, PrefillCoeffs
from foundry.serve.elastic.disagg import DisaggScheduler
from foundry.serve.elastic.instance_group import InstanceGroup
from foundry.serve.elastic.scheduler import LoongServeConfig, LoongServeScheduler
from foundry.serve.elastic.static_sp import StaticSPScheduler
from foundry.serve.sampling_params import SamplingParams

# made-up but shaped like a profile: SP k divides the quadratic term and adds a per-ring overhead
COST = ESPCostModel({k: PrefillCoeffs(0.002 * k, 1e-5 / k, 4e-8 / k) for k in (1, 2, 3)},
                    kv_bytes_per_token=4096, bandwidth=1e9)


def _greedy_reference(dense, prompt: list[int], n: int) -> list[int]:
    seq = list(prompt)
    for _ in range(n):
        seq.append(int(dense(seq)[-1].argmax()))
    return seq[len(prompt):]


@pytest.mark.parametrize("which", ["loongserve", "static-sp1", "static-sp3", "disagg"])
def test_cluster_serves_every_request_exactly_and_conserves_kv(esp_model, which):
    cfg, model, dense = esp_model
    n = 3
    sched = {"loongserve": lambda: LoongServeScheduler(COST, LoongServeConfig(max_wait_tokens=2)),
             "static-sp1": lambda: StaticSPScheduler(COST, 1),
             "static-sp3": lambda: StaticSPScheduler(COST, 3),
             "disagg": lambda: DisaggScheduler((0,), (1, 2))}[which]()
    slots = 80
    group = InstanceGroup(cfg, model.state_dict(), num_instances=n, slots_per_instance=slots)
    cluster = ElasticCluster(group, scheduler=sched, validate=True)
    try:
        rng = random.Random(7)
        lengths = [3, 40, 9, 1, 25, 17] + ([150] if which in ("loongserve", "static-sp3") else [])
        prompts = {f"r{i}": [rng.randrange(cfg.vocab_size) for _ in range(L)] for i, L in enumerate(lengths)}
        for rid, p in prompts.items():
            cluster.add_request(rid, p, SamplingParams(max_tokens=6, temperature=0))
        seen_multi = False
        while cluster.has_unfinished_requests():
            cluster.step()
            cluster.check()
            seen_multi |= any(len(cluster.placement.holders(r)) > 1 for r in cluster.placement)
        assert set(cluster.finished) == set(prompts)
        for rid, p in prompts.items():
            assert cluster.finished[rid].output == _greedy_reference(dense, p, 6), rid
        if which in ("loongserve", "static-sp3"):
            assert seen_multi  # the 150-token prompt exceeds one instance's 80 slots: it was spread
        assert all(cluster.placement.used(i) == 0 for i in range(n))
    finally:
        cluster.shutdown()


def test_refuses_what_the_cluster_cannot_hold(esp_model):
    cfg, model, _ = esp_model
    group = InstanceGroup(cfg, model.state_dict(), num_instances=2, slots_per_instance=50)
    cluster = ElasticCluster(group, scheduler=StaticSPScheduler(COST, 1))
    try:
        with pytest.raises(ValueError, match="KV slots"):
            cluster.add_request("big", [1] * 95, SamplingParams(max_tokens=10))
        with pytest.raises(ValueError, match="positions"):
            cluster.add_request("long", [1] * 10, SamplingParams(max_tokens=600))
        with pytest.raises(ValueError, match="max_tokens"):
            cluster.add_request("bad", [1], SamplingParams(max_tokens=0))
        cluster.add_request("ok", [1, 2], SamplingParams(max_tokens=2))
        with pytest.raises(ValueError, match="in use"):
            cluster.add_request("ok", [1], SamplingParams(max_tokens=2))
        assert cluster.run()["ok"].finish_reason == "length"
    finally:
        cluster.shutdown()


def test_two_processes_over_gloo_give_the_same_tokens(esp_model):
    """The same instance code as Ray actors (processes) exchanging tensors over torch.distributed gloo:
    a prompt larger than one instance is prefilled by a ring of two and decoded by two masters' merge."""
    cfg, model, dense = esp_model
    cost = ESPCostModel({k: PrefillCoeffs(0.002 * k, 1e-5 / k, 4e-8 / k) for k in (1, 2)})
    group = InstanceGroup(cfg, model.state_dict(), num_instances=2, slots_per_instance=100, backend="ray")
    assert group.time_prefill([30, 40], (0, 1)) > 0  # a profile point (and the KV is freed after it)
    cluster = ElasticCluster(group, scheduler=StaticSPScheduler(cost, 2), validate=True)
    try:
        rng = random.Random(3)
        prompts = {"long": [rng.randrange(cfg.vocab_size) for _ in range(150)], "short": [5, 6, 7]}
        for rid, p in prompts.items():
            cluster.add_request(rid, p, SamplingParams(max_tokens=5, temperature=0))
        while cluster.has_unfinished_requests():
            cluster.step()
            cluster.check()
        for rid, p in prompts.items():
            assert cluster.finished[rid].output == _greedy_reference(dense, p, 5), rid
    finally:
        cluster.shutdown()


def test_a_killed_instance_restarts_the_group_and_no_request_is_lost(esp_model):
    """An instance dies mid-run: the group restarts with empty pools, every request is recomputed from
    its prompt and the tokens it already had, and all finish with the dense model's greedy tokens."""
    cfg, model, dense = esp_model
    group = InstanceGroup(cfg, model.state_dict(), num_instances=2, slots_per_instance=100)
    cluster = ElasticCluster(group, scheduler=LoongServeScheduler(COST, LoongServeConfig(max_wait_tokens=2)),
                             validate=True)
    try:
        rng = random.Random(11)
        prompts = {f"r{i}": [rng.randrange(cfg.vocab_size) for _ in range(L)]
                   for i, L in enumerate([150, 7, 30, 12])}
        for rid, p in prompts.items():
            cluster.add_request(rid, p, SamplingParams(max_tokens=8, temperature=0))
        while not any(len(r.output) >= 2 for r in cluster.requests.values()):
            cluster.step()
        group.kill(1)
        while cluster.has_unfinished_requests():
            cluster.step()
        assert cluster.num_restarts == 1 and group.num_restarts == 1
        for rid, p in prompts.items():
            assert cluster.finished[rid].output == _greedy_reference(dense, p, 8), rid
        cluster.check()
    finally:
        cluster.shutdown()
