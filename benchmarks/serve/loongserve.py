"""LoongServe's elastic sequence parallelism on this machine: two instances as two Ray processes
(one thread each) exchanging KV over torch.distributed gloo.

1. TTFT of long prompts at SP = 1 (one instance) and SP = 2 (a ring of both), median of `--repeats`,
   through the cluster's own scheduler path (a request with max_tokens = 1), side by side in one run.
2. The ESP cost model T_k = A + B·Σl + C·Σl² fitted from this engine's prefill times (k = 1, 2).
3. A mixed long/short workload (Poisson arrivals, same arrival times for every system): mean JCT under
   LoongServe's scheduler (ESP) against static SP = 2 (every request on both instances), static
   SP = 1 (two replicas, each request on one instance) and prefill-decode disaggregation (one prefill
   instance, one decode instance, KV moved between them); and, on the same engine without elastic
   instances, two plain `LLMEngine` replicas (vLLM-style continuous batching with chunked prefill,
   requests dealt round-robin).

A random-weight Llama with 16k+ positions (4 layers, hidden 256, 4 query / 2 KV heads). Run it on an
idle machine: another process on the two cores halves what SP = 2 can gain.

    OMP_NUM_THREADS=1 python benchmarks/serve/loongserve.py --json --out docs/serve/loongserve.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import torch

from foundry.llm.config import ModelConfig
from foundry.llm.loader import build_model
from foundry.serve.elastic.cluster import ElasticCluster
from foundry.serve.elastic.disagg import DisaggScheduler
from foundry.serve.elastic.engine import profile_cost_model
from foundry.serve.elastic.instance_group import InstanceGroup
from foundry.serve.elastic.scheduler import LoongServeConfig, LoongServeScheduler
from foundry.serve.elastic.static_sp import StaticSPScheduler
from foundry.serve.sampling_params import SamplingParams

MAX_POS = 16384 + 512
CONFIG = ModelConfig(vocab_size=512, hidden_size=256, intermediate_size=688, num_layers=4, num_heads=4,
                     num_kv_heads=2, max_position_embeddings=MAX_POS)


def ttft(group: InstanceGroup, cost, sp: int, length: int, repeats: int) -> list[float]:
    out = []
    for rep in range(repeats):
        cluster = ElasticCluster(group, scheduler=StaticSPScheduler(cost, sp))
        rid = f"ttft-{sp}-{length}-{rep}"
        cluster.add_request(rid, [(7 * j + rep) % CONFIG.vocab_size for j in range(length)],
                            SamplingParams(max_tokens=1, temperature=0, ignore_eos=True))
        r = cluster.run()[rid]
        out.append(r.first_token_time - r.arrival)
    return out


def mixed_workload(args: argparse.Namespace) -> list[tuple[float, str, int, int]]:
    """(arrival s, id, prompt length, output length): a few long prompts among many short ones."""
    rng = random.Random(args.seed)
    kinds = ["long"] * args.num_long + ["short"] * args.num_short
    rng.shuffle(kinds)
    t, out = 0.0, []
    for i, kind in enumerate(kinds):
        t += rng.expovariate(args.rate)
        if kind == "long":
            out.append((t, f"long{i}", rng.randint(args.long_len // 2, args.long_len), args.output_len))
        else:
            out.append((t, f"short{i}", rng.randint(64, args.short_len), args.output_len))
    return out


def prompt_ids(request_id: str, length: int) -> list[int]:
    """The mixed workload's prompt for a request: the same tokens whichever system serves it."""
    return [(13 * j + len(request_id)) % CONFIG.vocab_size for j in range(length)]


def run_mixed(group: InstanceGroup, scheduler, workload) -> dict:
    cluster = ElasticCluster(group, scheduler=scheduler)
    start = time.monotonic()
    pending = list(workload)
    while pending or cluster.has_unfinished_requests():
        now = time.monotonic() - start
        while pending and pending[0][0] <= now:
            _, rid, plen, olen = pending.pop(0)
            cluster.add_request(rid, prompt_ids(rid, plen),
                                SamplingParams(max_tokens=olen, temperature=0, ignore_eos=True))
        wait = None if not pending else max(0.0, pending[0][0] - (time.monotonic() - start))
        if cluster.has_unfinished_requests():
            cluster.step(timeout=wait)
        elif wait:
            time.sleep(wait)
    fin = cluster.finished.values()
    times = {r.request_id: (r.finish_time - r.arrival, r.first_token_time - r.arrival) for r in fin}
    makespan = max(r.finish_time for r in fin) - min(r.arrival for r in fin)
    return summary(times) | {"makespan_s": makespan, "num_paused": cluster.num_paused}


def summary(times: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Mean JCT (all, long, short requests) and mean TTFT from request id → (JCT, TTFT)."""

    def mean(kind: str = "", which: int = 0) -> float:
        return statistics.fmean(v[which] for k, v in times.items() if k.startswith(kind))

    return {"mean_jct_s": mean(), "mean_jct_long_s": mean("long"), "mean_jct_short_s": mean("short"),
            "mean_ttft_s": mean(which=1)}


class EngineReplica:
    """One plain `LLMEngine` (vLLM-style continuous batching, chunked prefill) in a Ray process: the
    baseline on the same engine without elastic instances. It replays its share of the workload on
    the wall clock from `start` (a shared `time.time()`), and returns each request's JCT and TTFT."""

    def __init__(self, state_dict: dict, chunk: int) -> None:
        from foundry.llm.models.llama import LlamaForCausalLM
        from foundry.llm.tokenizer import build_tiny_tokenizer
        from foundry.serve import EngineConfig, LLMEngine

        torch.set_num_threads(1)
        model = LlamaForCausalLM(CONFIG)
        model.load_weights(state_dict)
        model.eval()
        blocks = MAX_POS // 16 + 64
        config = EngineConfig(policy="vllm", max_num_seqs=64, max_num_batched_tokens=chunk,
                              max_model_len=MAX_POS, num_device_blocks=blocks)
        self.engine = LLMEngine(config, model=model, tokenizer=build_tiny_tokenizer())

    def serve(self, requests: list[tuple[float, str, int, int]], start: float) -> dict:
        from foundry.serve import SamplingParams as Params

        pending, out = list(requests), {}
        while pending or self.engine.has_unfinished_requests():
            now = time.time() - start
            while pending and pending[0][0] <= now:
                t, rid, plen, olen = pending.pop(0)
                self.engine.add_request(rid, prompt_ids(rid, plen),
                                        Params(max_tokens=olen, temperature=0, ignore_eos=True),
                                        arrival_time=time.monotonic())
            if self.engine.has_unfinished_requests():
                for o in self.engine.step():
                    if o.finished:
                        out[o.request_id] = (o.finish_time - o.arrival_time,
                                             o.first_token_time - o.arrival_time)
            elif pending:
                time.sleep(max(0.0, pending[0][0] - (time.time() - start)))
        return out


def run_engine_replicas(state_dict: dict, workload, chunk: int) -> dict:
    """Two `EngineReplica`s, requests dealt alternately in arrival order (round-robin)."""
    from foundry.actors import RayBackend

    backend = RayBackend()
    replicas = [backend.spawn(EngineReplica, state_dict, chunk) for _ in range(2)]
    backend.wait_ready(replicas)
    start = time.time() + 1.0
    refs = [r.call("serve", workload[i::2], start) for i, r in enumerate(replicas)]
    times: dict = {}
    for part in backend.get(refs):
        times.update(part)
    for r in replicas:
        backend.kill(r)
    return summary(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", default="8192,16384")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--num-long", type=int, default=3)
    p.add_argument("--num-short", type=int, default=24)
    p.add_argument("--long-len", type=int, default=12288)
    p.add_argument("--short-len", type=int, default=768)
    p.add_argument("--output-len", type=int, default=24)
    p.add_argument("--rate", type=float, default=1.5, help="Poisson arrivals per second")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk", type=int, default=2048,
                   help="the engine replicas' prefill chunk (token budget; LoongServe's AE: 2048 on Mixed)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    torch.set_num_threads(1)
    lengths = [int(x) for x in args.lengths.split(",")]
    model = build_model(CONFIG, seed=0)
    t0 = time.monotonic()
    group = InstanceGroup(CONFIG, model.state_dict(), num_instances=2, slots_per_instance=MAX_POS,
                          backend="ray")
    try:
        cost, fit_report = profile_cost_model(group, max_len=4096)
        result: dict = {"ttft_by_length_s": {}, "cost_model": cost.to_dict(), "cost_fit": fit_report}
        for L in lengths:
            sp1, sp2 = ttft(group, cost, 1, L, args.repeats), ttft(group, cost, 2, L, args.repeats)
            m1, m2 = statistics.median(sp1), statistics.median(sp2)
            result["ttft_by_length_s"][str(L)] = {"sp1": sp1, "sp2": sp2, "sp1_median": m1, "sp2_median": m2,
                                                  "speedup": m1 / m2}
            print(f"TTFT {L:6d} tokens: SP=1 {m1:.3f} s, SP=2 {m2:.3f} s -> {m1 / m2:.2f}x  "
                  f"(runs {sp1} / {sp2})", flush=True)
        longest = result["ttft_by_length_s"][str(max(lengths))]
        result["ttft_s"] = {"sp1": longest["sp1_median"], "sp2": longest["sp2_median"]}
        workload = mixed_workload(args)
        systems = {"esp": lambda: LoongServeScheduler(cost, LoongServeConfig()),
                   "static_sp": lambda: StaticSPScheduler(cost, 2),
                   "static_sp1_replicas": lambda: StaticSPScheduler(cost, 1),
                   "disagg_1p1d": lambda: DisaggScheduler((0,), (1,), batch_max_tokens=MAX_POS)}
        mixed = {}
        for name, make in systems.items():
            mixed[name] = run_mixed(group, make(), workload)
            shown = json.dumps({k: round(v, 3) for k, v in mixed[name].items()})
            print(f"mixed {name:20s} {shown}", flush=True)
        result["mixed"] = mixed
        result["mixed_mean_jct_s"] = {"esp": mixed["esp"]["mean_jct_s"],
                                      "static_sp": mixed["static_sp"]["mean_jct_s"]}
        result["workload"] = {k: v for k, v in vars(args).items() if k not in ("json", "out")}
        result["model"] = {"layers": CONFIG.num_layers, "hidden": CONFIG.hidden_size,
                           "heads": CONFIG.num_heads, "kv_heads": CONFIG.num_kv_heads,
                           "max_positions": MAX_POS}
        result["wall_s"] = time.monotonic() - t0
        result["command"] = "OMP_NUM_THREADS=1 python benchmarks/serve/loongserve.py --json"
    finally:
        group.shutdown()
    # the same engine without elastic instances: two plain LLMEngine replicas with chunked prefill (after
    # the group is gone: the replicas take its two CPUs)
    mixed["engine_replicas_chunked"] = run_engine_replicas(model.state_dict(), workload, args.chunk)
    shown = json.dumps({k: round(v, 3) for k, v in mixed["engine_replicas_chunked"].items()})
    print(f"mixed {'engine_replicas_chunked':20s} {shown}", flush=True)
    result["wall_s"] = time.monotonic() - t0
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    if args.json:
        print(json.dumps({"ttft_s": result["ttft_s"], "mixed_mean_jct_s": result["mixed_mean_jct_s"]}))


if __name__ == "__main__":
    main()
