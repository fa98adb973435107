"""The prefill–decode disaggregation baseline: every plan valid, KV conserved (each request moves from
its prefill instance to a decode instance once), every request finished, nothing paused."""

import random

import pytest

from foundry.serve.elastic.disagg import DisaggScheduler
from tests.serve.elastic.test_scheduler import _Driver, _workload


@pytest.mark.parametrize("layout", [((0,), (1,)), ((0,), (1, 2)), ((0, 1), (2,)), ((1, 3), (0, 2))])
def test_disaggregation_runs_random_workloads_with_one_transfer_per_request(layout):
    prefill, decode = layout
    n = len(prefill) + len(decode)
    rng = random.Random(n)
    for _ in range(6):
        caps = [rng.randint(60, 120) for _ in range(n)]
        reqs = _workload(rng, rng.randint(5, 25), min(caps), rate=rng.choice([5.0, 50.0, 500.0]))
        d = _Driver(DisaggScheduler(prefill, decode, batch_max_tokens=100), caps, reqs)
        d.run()
        assert all(r.state == "done" and r.gen == r.out for r in d.reqs.values())
        assert all(d.p.used(i) == 0 for i in range(n))
        assert d.stats["pauses"] == 0 and d.stats["ring"] == 0
        decoded_twice = [r for r in d.reqs.values() if r.out > 1]
        assert d.stats["migrations"] == len(decoded_twice)  # exactly the requests that decode move


def test_disaggregation_refuses_overlapping_layouts():
    with pytest.raises(ValueError, match="disjoint"):
        DisaggScheduler((0, 1), (1,))
