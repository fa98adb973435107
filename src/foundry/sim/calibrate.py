"""Run a workload through the real engine, open loop on the wall clock, and keep what the simulator needs.

The driver is the simulator's loop with real time: requests join when the wall clock passes their
arrival, the engine steps while it has work, and it sleeps until the next arrival when idle. A
`StepRecorder` observes the engine's core, so each step yields (`BatchFeatures`, seconds):
the calibration samples of the fitted cost model. A step's seconds run from its start to the next
step's start (admissions and output handling included: the simulator has no gaps between steps).
The engine is passed in (no torch import here).
Prompts are the real benchmark's (`foundry.serve.bench.runner.prompt_token_ids`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from foundry.serve.bench.report import RequestRecord
from foundry.serve.bench.runner import prompt_token_ids
from foundry.serve.bench.workloads import Workload
from foundry.serve.sampling_params import SamplingParams
from foundry.sim.batch import BatchFeatures
from foundry.sim.recording import StepRecorder


@dataclass
class EngineRun:
    records: list[RequestRecord]
    recording: StepRecorder
    step_times: list[float]  # each step's wall time, start to the next start when the engine stayed busy

    @property
    def samples(self) -> list[tuple[BatchFeatures, float]]:
        return list(zip(self.recording.features, self.step_times, strict=True))


def run_engine(engine: Any, workload: Workload, *, seed: int = 0) -> EngineRun:
    """Drive an idle `LLMEngine` through `workload`; request ids are r0, r1, ... as in the simulator."""
    if engine.has_unfinished_requests():
        raise ValueError("engine: must be idle")
    recording = StepRecorder()
    prompts = prompt_token_ids(workload, seed)
    specs = sorted(enumerate(workload.requests), key=lambda x: x[1].arrival_time)
    records = [RequestRecord(s.prompt_len, s.output_len, s.arrival_time) for s in workload.requests]
    index = {f"r{i}": i for i in range(len(workload))}
    first_step = len(engine.iteration_records)
    clock = engine.clock  # the engine's own: a test's virtual clock drives the arrivals too
    with engine.core.observe(recording):
        t0 = clock()
        nxt, n = 0, len(specs)
        busy_since: float | None = None  # start of the previous step, unless the engine idled since
        intervals: list[float] = []
        while nxt < n or engine.has_unfinished_requests():
            now = clock() - t0
            if busy_since is not None:  # the previous step's cost incl. the loop around it
                intervals.append(now + t0 - busy_since)
                busy_since = None
            while nxt < n and specs[nxt][1].arrival_time <= now:
                i, spec = specs[nxt]
                params = SamplingParams(max_tokens=spec.output_len, temperature=0.0, ignore_eos=True)
                engine.add_request(f"r{i}", prompts[i], params, arrival_time=t0 + spec.arrival_time)
                nxt += 1
            if not engine.has_unfinished_requests():
                time.sleep(max(0.0, specs[nxt][1].arrival_time - (clock() - t0)))
                continue
            busy_since = clock()
            for out in engine.step():
                rec = records[index[out.request_id]]
                if rec.first_token_time is None and out.first_token_time is not None:
                    rec.first_token_time = out.first_token_time - t0
                rec.num_output_tokens = len(out.output_token_ids)
                if out.finished:
                    rec.finish_time = out.finish_time - t0
    steps = [r.elapsed for r in engine.iteration_records[first_step:]]
    if busy_since is not None:  # the last step: nothing follows it
        intervals.append(steps[-1])
    return EngineRun(records, recording, intervals)
