"""A measured latency profile of one engine on one model: prefill time by prompt length, decode step time.

FastServe's skip-join MLFQ places a new job in the first queue whose quantum covers the job's
first-iteration (prefill) time. That time must be *measured* on the engine and model being served:
the FastServe artifact shipped a profile whose prefill times (~1.5-3.6 ms for every length, OPT-13B)
were all below its 10 ms base quantum, which made skip-join inert (serving reference §2.5).

`measure_profile(engine)` runs real requests through the engine at batch 1 and records, per prompt
length, the summed wall time of the steps until the first token (one step unless the prompt is longer
than the token budget), and, per batch size, the median wall time of a pure decode step.
`foundry serve profile` writes the result as JSON; the MLFQ policies load it. No torch here: the
engine is passed in, so the policies that read a `Profile` stay importable without torch.

Scaling the base quantum. The paper's q0 = 10 ms was set for an engine whose decode step takes about
20 ms (DistServe's OPT-13B fit on an A100: 19.93 ms at batch 1; serving reference §4). A tiny model on
a CPU steps far faster, so the same q0 would span several iterations there. `scaled_base_quantum`
keeps the paper's ratio q0 / decode-step time: q0' = 10 ms x (this engine's batch-1 decode step /
19.93 ms).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PAPER_BASE_QUANTUM_S = 0.010  # FastServe's q0 (serving reference §2.2)
REFERENCE_DECODE_STEP_S = 0.019934703  # DistServe OPT-13B A100 decode fit at batch 1 (reference §4)
DEFAULT_PREFILL_LENS = (8, 16, 32, 64, 128, 256, 384, 512, 768, 1024)
DEFAULT_DECODE_BATCHES = (1, 2, 4, 8, 16)


@dataclass
class Profile:
    """Measured latencies (seconds). `prefill_lens` ascending, `prefill_times[i]` for `prefill_lens[i]`."""

    prefill_lens: list[int]
    prefill_times: list[float]
    decode_batches: list[int] = field(default_factory=list)
    decode_times: list[float] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # model, device, dtype, token budget, repeats

    def __post_init__(self) -> None:
        if not self.prefill_lens or len(self.prefill_lens) != len(self.prefill_times):
            raise ValueError("prefill_lens: must be non-empty and as long as prefill_times")
        if any(b <= a for a, b in zip(self.prefill_lens, self.prefill_lens[1:], strict=False)):
            raise ValueError(f"prefill_lens: must be strictly ascending, got {self.prefill_lens}")
        if any(not t > 0 for t in self.prefill_times):
            raise ValueError("prefill_times: must all be > 0 seconds")
        if len(self.decode_batches) != len(self.decode_times):
            raise ValueError("decode_batches: must be as long as decode_times")

    def prefill_time(self, num_tokens: int) -> float:
        """Prefill latency at batch 1, linearly interpolated in length; linear extrapolation beyond the
        last measured length (prefill grows at least linearly), clamped to the first value below it."""
        xs, ys = self.prefill_lens, self.prefill_times
        if num_tokens <= xs[-1] or len(xs) == 1:
            return float(np.interp(num_tokens, xs, ys))
        slope = max(0.0, (ys[-1] - ys[-2]) / (xs[-1] - xs[-2]))
        return ys[-1] + slope * (num_tokens - xs[-1])

    def decode_step_time(self, batch_size: int = 1) -> float:
        if not self.decode_batches:
            raise ValueError("decode_times: this profile has no decode measurements")
        return float(np.interp(batch_size, self.decode_batches, self.decode_times))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"profile: no such file {str(p)!r} (write one with `foundry serve profile`)")
        try:
            d = json.loads(p.read_text())
            return cls(**d)
        except (json.JSONDecodeError, TypeError) as e:
            msg = f"profile: {str(p)!r} is not a profile written by `foundry serve profile`: {e}"
            raise ValueError(msg) from None


def scaled_base_quantum(profile: Profile, paper_quantum_s: float = PAPER_BASE_QUANTUM_S) -> float:
    """The paper's base quantum scaled by this engine's batch-1 decode step over the paper's (~20 ms)."""
    return paper_quantum_s * profile.decode_step_time(1) / REFERENCE_DECODE_STEP_S


def measure_profile(engine: Any, prefill_lens: tuple[int, ...] = DEFAULT_PREFILL_LENS,
                    decode_batches: tuple[int, ...] = DEFAULT_DECODE_BATCHES, repeats: int = 3,
                    decode_context: int = 64, decode_steps: int = 16) -> Profile:
    """Measure `engine` (an idle `LLMEngine`) with real requests; lengths beyond its limits are skipped."""
    from foundry.serve.sampling_params import SamplingParams

    if repeats < 1:
        raise ValueError(f"repeats: must be >= 1, got {repeats}")
    if engine.has_unfinished_requests():
        raise ValueError("engine: must be idle while it is profiled")
    limit = engine.max_model_len - 1
    lens = sorted({n for n in prefill_lens if 1 <= n <= limit})
    if not lens:
        raise ValueError(f"prefill_lens: none fits the engine's context ({engine.max_model_len})")
    rng = np.random.default_rng(0)
    one = SamplingParams(max_tokens=1, temperature=0.0, ignore_eos=True)

    def prompt(n: int) -> list[int]:
        return rng.integers(32, 127, size=n).tolist()

    engine.generate([prompt(lens[0])], one)  # warm-up (allocator, first-call overheads)
    prefill_times = []
    for n in lens:
        samples = []
        for _ in range(repeats):
            start = len(engine.iteration_records)
            engine.generate([prompt(n)], one)
            samples.append(sum(r.elapsed for r in engine.iteration_records[start:]))
        prefill_times.append(statistics.median(samples))

    batches = sorted({b for b in decode_batches if 1 <= b <= engine.config.scheduler.max_num_seqs})
    budget = engine.config.scheduler.max_num_batched_tokens
    ctx = max(1, min(decode_context, limit - decode_steps))
    decode_times = []
    for b in batches:
        params = SamplingParams(max_tokens=decode_steps + 1, temperature=0.0, ignore_eos=True)
        start = len(engine.iteration_records)
        n = max(1, min(ctx, budget // b))  # all b prompts prefill in one step, so they decode together
        for _ in range(repeats):
            engine.generate([prompt(n) for _ in range(b)], params)
        steps = [r.elapsed for r in engine.iteration_records[start:]
                 if r.num_prefill_tokens == 0 and r.num_seqs == b]
        if not steps:
            raise RuntimeError(f"decode_batches: no pure decode step at batch {b} (token budget too small?)")
        decode_times.append(statistics.median(steps))
    cfg = engine.config
    meta = {"model": engine.model_name, "device": str(engine.device), "dtype": cfg.device.dtype,
            "max_num_batched_tokens": cfg.scheduler.max_num_batched_tokens,
            "block_size": cfg.cache.block_size,
            "repeats": repeats, "decode_context": ctx}
    return Profile(lens, prefill_times, batches, decode_times, meta)
