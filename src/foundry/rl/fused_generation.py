"""One batch's generation and inference stages with RLHFuse's inter-stage fusion, on the rollout workers.

The workers generate their shares and report each finished sample. When the samples still generating
fall to the threshold R_t (a fraction of the batch), the `m` workers with the most samples left keep
generating and the others hand their unfinished samples over (`preempt` → `Preempted`; each sample
moves with its sampler stream and its KV, or recomputes it), which the survivors take up between two
engine steps (`adopt`, or `resume` if their own generation has just ended). The freed workers start
the inference stage (`infer`: reference logprobs, and the critic's values under PPO) on the finished
groups, and every worker joins it once it stops generating. The trainer then takes the groups with
their inference results instead of computing them.

R_t = 0 is RLHFuse-Base on the same code: no migration, and the inference stage starts when the last
sample is done. `m` is the paper's rule (`inter_fusion.num_survivor_instances`): the fewest workers whose
decode batch stays in the flat part of PTL(BS), never all of them. `inter_fusion` also models this
stage and chooses R_t (`choose_threshold`), from the lengths seen so far on the measured PTL.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from foundry.actors import ActorDied
from foundry.rl.inter_fusion import FusionCosts, num_survivor_instances
from foundry.rl.latency import PerTokenLatency
from foundry.rl.rollout import GenerationDone, Inference, PartialGroup, Preempted, SampleDone
from foundry.rl.samples import Group

if TYPE_CHECKING:
    from foundry.rl.controller import Controller


@dataclass
class _Inferred:
    worker: int
    handle: Any  # the actor that ran it (a dead one is restarted once, however many calls it lost)
    groups: list[Group]
    results: list[list[Inference]] | None  # None: the worker died, the groups go back in the queue
    seconds: float


@dataclass
class FusionStats:
    threshold: float  # R_t used for this batch
    migrated_samples: int = 0
    migrated_at: float | None = None  # seconds after the batch's launch
    survivors: list[int] = field(default_factory=list)
    gen_end: float = 0.0  # seconds after launch: the last sample done
    infer_end: float = 0.0  # seconds after launch: the last group inferred
    infer_s: float = 0.0  # worker-seconds of inference
    infer_before_gen_end_s: float = 0.0  # of which done while samples were still generating (hidden)

    def as_dict(self) -> dict[str, Any]:
        return {
            "fusion_threshold": self.threshold,
            "migrated_samples": self.migrated_samples,
            "migrated_at_s": self.migrated_at,
            "survivors": len(self.survivors),
            "gen_inference_s": self.infer_end,
            "inference_s": self.infer_s,
            "inference_hidden_s": self.infer_before_gen_end_s,
        }


def survivor_count(unfinished: int, workers: int, ptl: PerTokenLatency, max_batch: int) -> int:
    """RLHFuse's m (`inter_fusion.num_survivor_instances`: the fewest workers whose decode batches stay in
    the flat part of PTL), at most all workers but one: fusion frees at least one."""
    return min(workers - 1, num_survivor_instances(unfinished, 0.0, workers, ptl, max_batch, FusionCosts()))


def gather_fused(
    ctl: Controller, b: int, q: queue.Queue, assigned: list[int], threshold: float, on_group: Any = None
) -> tuple[list[Group], float, float, FusionStats]:
    """Run batch `b`'s generation (already launched with progress reports) and its inference stage to the
    end; returns the groups (each sample carrying its inference results), the time the last group
    arrived, the workers' generation seconds, and what fusion did. `assigned[w]`: samples worker `w`
    was given."""
    cfg, backend, workers = ctl.config, ctl.backend, len(ctl.workers)
    total = sum(assigned)
    launched = ctl._launched_at[b]
    stats = FusionStats(threshold)
    left = list(assigned)  # samples each worker still has to finish
    generating = set(range(workers))  # workers with a generation stream in flight
    inferring: set[int] = set()
    to_infer: list[Group] = []
    groups: list[Group] = []
    gen_busy, gen_end, fused = 0.0, 0.0, False
    inferred = 0

    def infer_on(w: int, chunk: list[Group]) -> None:
        start, handle = time.monotonic(), ctl.workers[w]
        try:
            results = backend.get(handle.call("infer", chunk))
        except ActorDied:
            results = None
        q.put(_Inferred(w, handle, chunk, results, time.monotonic() - start))

    def dispatch_inference() -> None:
        """Idle workers share the groups waiting for inference (once fusion started or generation ended)."""
        if not to_infer or not (fused or not generating):
            return
        idle = [w for w in range(workers) if w not in generating and w not in inferring]
        if not idle:
            return
        for i, w in enumerate(idle):
            chunk = to_infer[i * len(to_infer) // len(idle) : (i + 1) * len(to_infer) // len(idle)]
            if chunk:
                inferring.add(w)
                threading.Thread(target=infer_on, args=(w, chunk), daemon=True).start()
        to_infer.clear()

    def migrate() -> None:
        unfinished = sum(left[w] for w in generating)
        m = survivor_count(unfinished, workers, ctl._latency(), cfg.max_batch)
        ranked = sorted(generating, key=lambda w: (-left[w], w))
        stats.survivors = ranked[:m]
        stats.migrated_at = time.monotonic() - launched
        for w in ranked[m:]:
            with contextlib.suppress(ActorDied):  # dead: its pump reports what it owed, regenerated then
                backend.get(ctl.workers[w].signal("preempt"))

    def hand_over(partials: list[PartialGroup]) -> None:
        """Each prompt to the survivor with the fewest samples left (largest first); its running
        generation adopts them, or a new `resume` call takes them if it has just ended."""
        for pg in sorted(partials, key=lambda p: -p.unfinished):
            w = min(stats.survivors, key=lambda s: (left[s], s))
            left[w] += pg.unfinished
            stats.migrated_samples += pg.unfinished
            item = (pg.index, pg.prompt)
            ctl._pump_items[w].append(item)
            try:
                adopted = backend.get(ctl.workers[w].signal("adopt", [pg]))
            except ActorDied:
                # the survivor died; its pump may have reported its losses before this prompt joined
                # them, so the prompt gets a pump of its own: it fails at once and the controller
                # regenerates the prompt on the restarted worker (once: the group arrives once)
                ctl._pump_items[w].remove(item)
                adopted = False
            if not adopted:
                generating.add(w)
                ctl._start_pump(w, b, [(pg.index, pg.prompt)], q, "resume", (b, [pg], True, cfg.migrate_kv))

    while len(groups) < cfg.prompts_per_step or generating or inferring or to_infer:
        item = q.get()
        if isinstance(item, SampleDone):
            left[item.worker] -= 1
            if not fused and threshold > 0 and 0 < sum(left) <= threshold * total:
                fused = True
                migrate()
                dispatch_inference()
        elif isinstance(item, Preempted):
            left[item.worker] = 0
            hand_over(item.partials)
        elif isinstance(item, GenerationDone):
            generating.discard(item.worker)
            gen_busy += item.busy_s
            dispatch_inference()
        elif isinstance(item, _Inferred):
            inferring.discard(item.worker)
            if item.results is None:  # the worker died: its groups wait for another
                to_infer.extend(item.groups)
                ctl._restart_worker(item.worker, item.handle, b, q)
            else:
                for g, per_sample in zip(item.groups, item.results, strict=True):
                    for s, x in zip(g.samples, per_sample, strict=True):
                        s.ref_logprobs, s.values = x.ref_logprobs, x.values
                inferred += len(item.groups)
                stats.infer_s += item.seconds
                if generating:
                    stats.infer_before_gen_end_s += item.seconds
                stats.infer_end = time.monotonic() - launched
            dispatch_inference()
        elif isinstance(item, Group):
            groups.append(item)
            gen_end = time.monotonic()
            to_infer.append(item)
            if on_group is not None:
                on_group(ctl, item)
            dispatch_inference()
        else:  # a worker failed (raised) or died: the controller restarts it on the prompts it lost
            w, prompts = ctl._handle_failure(item, b, q)
            left[w] = cfg.n * prompts
    stats.gen_end = gen_end - launched
    assert inferred == len(groups)
    return groups, gen_end, gen_busy, stats
