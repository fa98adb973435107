"""An elastic instance: a model replica, its own KV pool, and a channel to its peers.

Instances run as actors (`foundry.actors`: Ray processes, or threads in one process); the coordinator
calls their methods with plain data (`PrefillWork`, `DecodeWork`, migration ranges) and every member of
a batch runs the same call, exchanging tensors over the `Comm`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from foundry.llm.config import ModelConfig
from foundry.llm.models.llama import LlamaForCausalLM
from foundry.serve.elastic.comm import GlooComm, ThreadHub
from foundry.serve.elastic.kv_pool import KVPool
from foundry.serve.elastic.multi_master_decode import DecodeWork, multi_master_decode
from foundry.serve.elastic.ring_prefill import PrefillWork, ring_prefill


@dataclass(frozen=True)
class CommSpec:
    """How an instance reaches its peers: ``thread`` (a shared `ThreadHub`) or ``gloo`` (an init URL)."""

    kind: str
    hub: ThreadHub | None = None
    init_method: str = ""


class ElasticInstance:
    def __init__(self, rank: int, world_size: int, model_config: ModelConfig,
                 state_dict: dict[str, torch.Tensor], num_slots: int, comm: CommSpec,
                 num_threads: int | None = 1) -> None:
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        self.rank = rank
        self.model = LlamaForCausalLM(model_config)
        self.model.load_weights(state_dict)
        self.model.eval()
        c = model_config
        self.pool = KVPool(c.num_layers, c.num_kv_heads, c.head_dim, num_slots)
        self.world_size = world_size
        self.comm: Any = None
        if comm.kind == "thread":
            assert comm.hub is not None
            self.comm = comm.hub.comm(rank)
        elif comm.kind != "gloo":
            raise ValueError(f"comm: unknown kind {comm.kind!r}; choose thread or gloo")
        elif comm.init_method:
            self.connect(comm.init_method)

    def rendezvous_address(self) -> str:
        """``tcp://IP:PORT`` on this instance's node, for the group's process group (rank 0 is asked:
        on a multi-node cluster the others must reach its node, not the driver's)."""
        import socket

        try:
            import ray

            ip = ray.util.get_node_ip_address()
        except Exception:  # noqa: BLE001 - no Ray here (threads, a plain process): this host
            ip = "127.0.0.1"
        with socket.socket() as sock:
            sock.bind(("", 0))
            return f"tcp://{ip}:{sock.getsockname()[1]}"

    def connect(self, init_method: str) -> None:
        """Join the group's `torch.distributed` process group (every member calls it at once)."""
        self.comm = GlooComm(self.rank, self.world_size, init_method)

    def prefill(self, work: PrefillWork) -> dict[str, torch.Tensor]:
        return ring_prefill(self.model, self.pool, self.comm, work)

    def decode(self, work: DecodeWork) -> dict[str, torch.Tensor]:
        return multi_master_decode(self.model, self.pool, self.comm, work)

    def send_kv(self, request_id: str, start: int, stop: int, dst: int) -> None:
        """Migration, source side: positions start..stop-1 leave this instance for `dst`."""
        k, v = self.pool.take(request_id, start, stop)
        self.comm.isend(torch.stack([k, v]), dst).wait()

    def recv_kv(self, request_id: str, start: int, stop: int, src: int) -> None:
        p = self.pool
        buf = torch.empty(2, p.k.shape[0], p.k.shape[1], stop - start, p.k.shape[3], dtype=p.k.dtype)
        self.comm.irecv(buf, src).wait()
        p.put(request_id, start, buf[0], buf[1])

    def free(self, request_ids: list[str]) -> None:
        for rid in request_ids:
            self.pool.free(rid)

    def held(self) -> dict[str, list[int]]:
        """request → the positions whose KV this instance holds (for conservation checks)."""
        return {rid: self.pool.positions(rid).tolist() for rid in self.pool.requests()}

    def num_free_slots(self) -> int:
        return self.pool.num_free
