"""Point-to-point tensor exchange between instances: the per-layer traffic of ESP.

Ray calls carry the plan and the results (once per step); the tensors that move every layer (a ring's
KV blocks, multi-master queries and partial outputs, migrated KV) go over this smaller channel:

    work = comm.isend(tensor, dst); work2 = comm.irecv(buffer, src); work.wait(); work2.wait()

`ThreadComm` connects instances that are threads of one process (tests, a quick look); `GlooComm` is
`torch.distributed` point-to-point (gloo on CPUs, the same calls as NCCL on GPUs) between processes on
one machine or several. The instance code is the same over both. Receivers know every shape in advance
(every instance sees the whole plan), so only raw tensors travel. Between any two ranks, messages of one
tag arrive in the order they were sent; ESP needs one tag (an instance is in one batch at a time), a
pipeline with two models on the same links (RLHFuse) tags each micro-batch's messages.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Protocol

import torch

RECV_TIMEOUT_S = 120.0


class Work(Protocol):
    def wait(self) -> None: ...


class Comm(Protocol):
    rank: int
    world_size: int

    def isend(self, tensor: torch.Tensor, dst: int, tag: int = 0) -> Work: ...
    def irecv(self, buffer: torch.Tensor, src: int, tag: int = 0) -> Work: ...


_CLOSED: Any = object()


class _Done:
    def wait(self) -> None:
        return None


class _Receive:
    def __init__(self, q: queue.Queue[torch.Tensor], buffer: torch.Tensor) -> None:
        self.q, self.buffer = q, buffer

    def wait(self) -> None:
        try:  # a peer that failed never sends: fail too rather than hang
            got = self.q.get(timeout=RECV_TIMEOUT_S)
        except queue.Empty:
            raise RuntimeError(f"comm: nothing received in {RECV_TIMEOUT_S} s (did a peer fail?)") from None
        if got is _CLOSED:
            raise RuntimeError("comm: the channel was closed (the instance group is being restarted)")
        if got.shape != self.buffer.shape:
            raise RuntimeError(f"comm: expected a tensor of shape {tuple(self.buffer.shape)}, "
                               f"got {tuple(got.shape)}")
        self.buffer.copy_(got)


class ThreadHub:
    """The mailboxes of `world_size` instances living in one process: one queue per ordered pair."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self._queues: dict[tuple[int, int, int], queue.Queue] = {}
        self._lock = threading.Lock()
        self._closed = False

    def comm(self, rank: int) -> ThreadComm:
        return ThreadComm(self, rank)

    def queue(self, src: int, dst: int, tag: int) -> queue.Queue:
        """The mailbox of messages from `src` to `dst` with `tag` (messages of one tag keep their order)."""
        with self._lock:
            q = self._queues.get((src, dst, tag))
            if q is None:
                q = self._queues[(src, dst, tag)] = queue.Queue()
                if self._closed:
                    q.put(_CLOSED)
            return q

    def close(self) -> None:
        """Wake every receiver with an error (a group being torn down must not leave threads waiting)."""
        with self._lock:
            self._closed = True
            for q in self._queues.values():
                for _ in range(64):
                    q.put(_CLOSED)


class ThreadComm:
    def __init__(self, hub: ThreadHub, rank: int) -> None:
        self.hub, self.rank, self.world_size = hub, rank, hub.world_size

    def isend(self, tensor: torch.Tensor, dst: int, tag: int = 0) -> Work:
        self.hub.queue(self.rank, dst, tag).put(tensor.detach().clone())  # the sender may reuse its buffer
        return _Done()

    def irecv(self, buffer: torch.Tensor, src: int, tag: int = 0) -> Work:
        return _Receive(self.hub.queue(src, self.rank, tag), buffer)


class GlooComm:
    """`torch.distributed` point-to-point; `init_method` like ``tcp://127.0.0.1:29517``."""

    def __init__(self, rank: int, world_size: int, init_method: str, backend: str = "gloo") -> None:
        import torch.distributed as dist

        self.dist, self.rank, self.world_size = dist, rank, world_size
        if world_size > 1 and not dist.is_initialized():
            dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world_size)

    def isend(self, tensor: torch.Tensor, dst: int, tag: int = 0) -> Work:
        return self.dist.isend(tensor.contiguous(), dst, tag=tag)

    def irecv(self, buffer: torch.Tensor, src: int, tag: int = 0) -> Work:
        return self.dist.irecv(buffer, src, tag=tag)

    def close(self) -> None:
        if self.dist.is_initialized():
            self.dist.destroy_process_group()


def exchange(comm: Comm, outgoing: dict[int, torch.Tensor], incoming: dict[int, torch.Tensor]) -> None:
    """Send `outgoing[peer]` to each peer and fill `incoming[peer]` from each, all at once (no peer
    waits on another's send first, so a ring or an all-to-all cannot deadlock)."""
    works = [comm.irecv(buf, src) for src, buf in incoming.items() if buf.numel()]
    works += [comm.isend(t, dst) for dst, t in outgoing.items() if t.numel()]
    for w in works:
        w.wait()
