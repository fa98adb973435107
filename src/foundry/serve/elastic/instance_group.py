"""N elastic instances as actors: Ray processes whose tensors travel over torch.distributed (gloo here,
NCCL on GPUs), or threads of this process over in-memory queues. The same `ElasticInstance` code runs
in both; Ray places and restarts the processes, and the same code runs on a multi-node Ray cluster
(started with ``ray.init(address=...)`` before the group)."""

from __future__ import annotations

import time
from typing import Any

import torch

from foundry.actors import LocalBackend, RayBackend
from foundry.llm.config import ModelConfig
from foundry.serve.elastic.comm import ThreadHub
from foundry.serve.elastic.instance import CommSpec, ElasticInstance
from foundry.serve.elastic.placement import KVRange
from foundry.serve.elastic.ring_prefill import PrefillWork


class InstanceGroup:
    def __init__(self, model_config: ModelConfig, state_dict: dict[str, torch.Tensor], *, num_instances: int,
                 slots_per_instance: int, backend: str = "local", threads_per_instance: int = 1) -> None:
        if num_instances < 1 or slots_per_instance < 1:
            raise ValueError(f"num_instances and slots_per_instance must be >= 1, got {num_instances}, "
                             f"{slots_per_instance}")
        self.model_config = model_config
        self.num_instances, self.slots_per_instance = num_instances, slots_per_instance
        self.backend_name, self.threads_per_instance = backend, threads_per_instance
        self._state_dict = {k: v.detach().cpu() for k, v in state_dict.items()}
        self.num_restarts = 0
        self._start()

    def _start(self) -> None:
        n = self.num_instances
        self._hub: ThreadHub | None = None
        if self.backend_name == "local":
            self.backend: LocalBackend | RayBackend = LocalBackend()
            self._hub = ThreadHub(n)
            comm = CommSpec("thread", hub=self._hub)
        elif self.backend_name == "ray":
            self.backend = RayBackend()
            comm = CommSpec("gloo")  # connected below, at an address on rank 0's node
        else:
            raise ValueError(f"backend: unknown backend {self.backend_name!r}; choose local or ray")
        self.handles = [self.backend.spawn(ElasticInstance, r, n, self.model_config, self._state_dict,
                                           self.slots_per_instance, comm, self.threads_per_instance,
                                           num_cpus=1) for r in range(n)]
        self.backend.wait_ready(self.handles)
        if comm.kind == "gloo":
            address = self.backend.get(self.handles[0].call("rendezvous_address"))
            self.backend.get([h.call("connect", address) for h in self.handles])

    def restart(self) -> None:
        """Replace every instance with a fresh one (empty KV pools, a new channel): what follows the
        loss of one, since the survivors' peer-to-peer channel goes down with it."""
        self.shutdown()
        self.num_restarts += 1
        self._start()

    def call(self, instance: int, method: str, *args: Any) -> Any:
        """Queue a call on one instance (its calls run in order); returns a ref for `get`/`wait_any`."""
        return self.handles[instance].call(method, *args)

    def get(self, refs: Any) -> Any:
        return self.backend.get(refs)

    def wait_any(self, refs: list[Any], timeout: float | None = None) -> list[Any]:
        return self.backend.wait_any(refs, timeout=timeout)

    def time_prefill(self, lengths: list[int], ring: tuple[int, ...]) -> float:
        """Seconds for one prefill of prompts of `lengths` on `ring` (KV split evenly over it, then
        freed): a profile point for the cost model. Run it while no cluster uses the group."""
        ids = tuple(f"_profile{i}" for i in range(len(lengths)))
        keep = {}
        for rid, n in zip(ids, lengths, strict=True):
            cuts = [n * j // len(ring) for j in range(len(ring) + 1)]
            keep[rid] = tuple(KVRange(i, a, b)
                              for i, a, b in zip(ring, cuts, cuts[1:], strict=False) if b > a)
        vocab = self.model_config.vocab_size
        work = PrefillWork(ids, tuple(tuple(j % vocab for j in range(n)) for n in lengths), ring, keep)
        start = time.perf_counter()
        self.get([self.call(i, "prefill", work) for i in ring])
        elapsed = time.perf_counter() - start
        self.get([self.call(i, "free", list(ids)) for i in ring])
        return elapsed

    def kill(self, instance: int) -> None:
        """Kill one instance, as a crash would (tests, fault drills)."""
        self.backend.kill(self.handles[instance])

    def shutdown(self) -> None:
        for h in self.handles:
            self.backend.kill(h)
        if self._hub is not None:
            self._hub.close()

