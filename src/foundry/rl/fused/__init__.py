"""RLHFuse's intra-stage fusion: a fused actor/critic bidirectional pipeline and its schedule search.

Torch-free, unit-time model (see ``docs/rl-fused-pipeline.md``). Two models train together on ``pp0``
nodes: the large one (model 0, "actor") has ``pp0`` stages, stage ``s`` on node ``s``, ``m0``
micro-batches; the small one (model 1, "critic") has ``pp1`` stages and is replicated ``pp0 // pp1``
times on contiguous node blocks, each replica running ``m1`` micro-batches in the *reverse* direction
(replica ``r``'s stage ``j`` on node ``r * pp1 + pp1 - 1 - j``). A forward of model ``i`` takes ``f_i``,
a backward ``2 f_i``.

- :mod:`.config`: :class:`FusedConfig` and the 12 ``PUBLISHED`` configurations;
- :mod:`.schedule`: tasks, the validity checker, list scheduling (explicit and token orders), memory;
- :mod:`.baselines`: 1F1B, the sequential 1F1B makespan, the lower bound, the bubble ratio;
- :mod:`.incremental`: the schedule as a DAG, re-evaluated incrementally after an adjacent swap;
- :mod:`.search`: greedy starts, simulated annealing over adjacent swaps (half of them on critical
  paths), then (optionally) the memory pass of :mod:`.memory`.
"""

from foundry.rl.fused.baselines import (
    bubble,
    lower_bound,
    lower_bound_terms,
    one_f_one_b,
    seq_1f1b_makespan,
    seq_1f1b_orders,
)
from foundry.rl.fused.config import PUBLISHED, FusedConfig
from foundry.rl.fused.memory import MemoryResult, memory_pass
from foundry.rl.fused.schedule import (
    AB,
    AF,
    CB,
    CF,
    Evaluation,
    InvalidSchedule,
    Task,
    all_tasks,
    check_schedule,
    evaluate_schedule,
    evaluate_tokens,
    memory_error,
    peak_memory_tokens,
    tokens_to_tasks,
)
from foundry.rl.fused.search import SearchResult, greedy_orders, search

__all__ = [
    "AB", "AF", "CB", "CF", "PUBLISHED", "Evaluation", "FusedConfig", "InvalidSchedule", "MemoryResult",
    "SearchResult", "Task", "all_tasks", "bubble", "check_schedule", "evaluate_schedule",
    "evaluate_tokens", "greedy_orders", "lower_bound", "lower_bound_terms", "memory_error", "memory_pass",
    "one_f_one_b", "peak_memory_tokens", "search", "seq_1f1b_makespan", "seq_1f1b_orders",
    "tokens_to_tasks",
]
