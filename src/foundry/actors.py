"""Where actors live: Ray actors (processes, on one machine or a cluster) or local threads (one
process; for tests and for a quick look without Ray). The RL controller and the elastic serving
cluster are written once against this small interface:

    handle = backend.spawn(Class, *args, num_cpus=1)   # an actor: its calls run one at a time, in order
    ref = handle.call("method", *args)                 # returns at once; `backend.get(ref)` waits
    for item in handle.stream("generator_method", *args): ...   # items as the actor yields them
    backend.get(handle.signal("method", *args))        # runs beside the call in flight (flags only)

Arguments may be refs from other calls (Ray resolves them; the local backend waits for them).
"""

from __future__ import annotations

import os
import queue
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

_END = object()


class ActorDied(RuntimeError):
    """The actor's process (or thread, locally) is gone; its calls in flight are lost."""


class Handle(Protocol):
    def call(self, method: str, *args: Any) -> Any: ...
    def stream(self, method: str, *args: Any) -> Iterator[Any]: ...
    def signal(self, method: str, *args: Any) -> Any: ...


class RayBackend:
    name = "ray"

    def __init__(self) -> None:
        import ray

        if not ray.is_initialized():  # a caller on a cluster has already run ray.init(address=...)
            # Ray runs its workers at niceness 15 by default: any other load on the machine then starves
            # the rollout workers and the trainer, which are the work here (not background tasks)
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        self.ray = ray

    def spawn(self, cls: type, *args: Any, num_cpus: float = 1) -> _RayHandle:
        # calls run one at a time, in order; `signal` calls have a thread of their own beside them
        actor = self.ray.remote(num_cpus=num_cpus, concurrency_groups={"signal": 1})(cls)
        return _RayHandle(self.ray, actor.remote(*args))

    def wait_ready(self, handles: list[_RayHandle]) -> None:
        self.ray.get([h.actor.__ray_ready__.remote() for h in handles])

    def get(self, ref: Any) -> Any:
        from ray.exceptions import RayActorError

        try:
            return self.ray.get(ref)
        except RayActorError as e:
            raise ActorDied(str(e).splitlines()[0]) from e

    def wait_any(self, refs: list[Any], timeout: float | None = None) -> list[Any]:
        """Blocks until at least one of `refs` is done (or `timeout` seconds pass); returns the done ones."""
        done, _ = self.ray.wait(refs, num_returns=1, timeout=timeout)
        return [r for r in refs if any(r == d for d in done)]

    def kill(self, handle: _RayHandle) -> None:
        self.ray.kill(handle.actor, no_restart=True)


class _RayHandle:
    def __init__(self, ray: Any, actor: Any) -> None:
        self.ray, self.actor = ray, actor

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self.actor, method).remote(*args)

    def signal(self, method: str, *args: Any) -> Any:
        return getattr(self.actor, method).options(concurrency_group="signal").remote(*args)

    def stream(self, method: str, *args: Any) -> Iterator[Any]:
        from ray.exceptions import RayActorError

        try:
            for ref in getattr(self.actor, method).options(num_returns="streaming").remote(*args):
                yield self.ray.get(ref)
        except RayActorError as e:
            raise ActorDied(str(e).splitlines()[0]) from e


class LocalBackend:
    """Each actor is an object with one thread that runs its calls in order (torch releases the GIL in
    its kernels, so actors overlap partly; timings are not those of processes)."""

    name = "local"

    def spawn(self, cls: type, *args: Any, num_cpus: float = 1) -> _LocalHandle:
        return _LocalHandle(cls, args)

    def wait_ready(self, handles: list[_LocalHandle]) -> None:
        for h in handles:
            h.ready.result()

    def get(self, ref: Any) -> Any:
        if isinstance(ref, list):
            return [self.get(r) for r in ref]
        if not isinstance(ref, Future):
            return ref
        try:
            return ref.result()
        except CancelledError:  # queued on an actor that was killed
            raise ActorDied("actor killed") from None

    def wait_any(self, refs: list[Any], timeout: float | None = None) -> list[Any]:
        done, _ = wait(refs, timeout=timeout, return_when=FIRST_COMPLETED)
        return [r for r in refs if r in done]

    def kill(self, handle: _LocalHandle) -> None:
        handle.kill()


class _LocalHandle:
    def __init__(self, cls: type, args: tuple[Any, ...]) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.obj: Any = None
        self.dead = False
        self.streams: set[queue.Queue[Any]] = set()

        def build() -> None:
            self.obj = cls(*_resolve(args))

        self.ready = self.pool.submit(build)

    def kill(self) -> None:
        """Like a process dying: calls in flight and later fail with ActorDied (a thread cannot be
        stopped, so one already computing finishes unseen and its results are dropped)."""
        self.dead = True
        self.pool.shutdown(wait=False, cancel_futures=True)
        for q in list(self.streams):
            q.put(_Raised(ActorDied("actor killed")))

    def call(self, method: str, *args: Any) -> Future:
        if self.dead:
            f: Future = Future()
            f.set_exception(ActorDied("actor killed"))
            return f
        return self.pool.submit(lambda: getattr(self.obj, method)(*_resolve(args)))

    def signal(self, method: str, *args: Any) -> Future:
        """Run `method` now, in the caller's thread, beside whatever call the actor is running (it must
        only set flags: the actor's own thread may be inside any other method)."""
        f: Future = Future()
        if self.dead:
            f.set_exception(ActorDied("actor killed"))
        else:
            self.ready.result()
            f.set_result(getattr(self.obj, method)(*_resolve(args)))
        return f

    def stream(self, method: str, *args: Any) -> Iterator[Any]:
        if self.dead:
            raise ActorDied("actor killed")
        q: queue.Queue[Any] = queue.Queue()
        self.streams.add(q)

        def run() -> None:
            try:
                for item in getattr(self.obj, method)(*_resolve(args)):
                    q.put(item)
                q.put(_END)
            except BaseException as e:  # noqa: BLE001 - re-raised in the consumer's thread
                q.put(_Raised(e))

        self.pool.submit(run)
        try:
            while (item := q.get()) is not _END:
                if isinstance(item, _Raised):
                    raise item.error
                if self.dead:  # (an item that raced the kill)
                    raise ActorDied("actor killed")
                yield item
        finally:
            self.streams.discard(q)


class _Raised:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _resolve(args: tuple[Any, ...]) -> list[Any]:
    return [a.result() if isinstance(a, Future) else a for a in args]


def make_backend(name: str) -> RayBackend | LocalBackend:
    if name == "ray":
        return RayBackend()
    if name == "local":
        return LocalBackend()
    raise ValueError(f"backend: unknown backend {name!r}; choose ray or local")
