"""`ElasticEngine`: the `LLMEngine` face (add / abort / step → `RequestOutput`s / stats) over an elastic
cluster, so `AsyncEngine` and the OpenAI server run on it unchanged (`foundry serve --instances N --esp`).

Text, stop strings and outputs are the engine's own pieces (`IncrementalDetokenizer`, `RequestOutput`);
tokens, placement and scheduling are the cluster's. What the elastic path does not do yet is refused
with a message naming the field: several samples per prompt (`n > 1`) and logprobs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from foundry.llm.loader import load_model
from foundry.llm.tokenizer import Tokenizer, prompt_token_ids
from foundry.serve.config import EngineConfig
from foundry.serve.detokenizer import IncrementalDetokenizer
from foundry.serve.elastic.cluster import ElasticCluster
from foundry.serve.elastic.cost_model import ESPCostModel, PrefillCoeffs, PrefillSample, fit_prefill
from foundry.serve.elastic.instance_group import InstanceGroup
from foundry.serve.elastic.scheduler import ElasticScheduler, LoongServeConfig, LoongServeScheduler
from foundry.serve.elastic.static_sp import StaticSPScheduler
from foundry.serve.outputs import EngineStats, RequestOutput
from foundry.serve.sampling_params import SamplingParams


@dataclass
class _Text:
    detok: IncrementalDetokenizer
    reported: int = 0  # output tokens already handed out


class ElasticEngine:
    def __init__(self, cluster: ElasticCluster, tokenizer: Tokenizer, model_name: str,
                 max_model_len: int) -> None:
        self.cluster, self.tokenizer = cluster, tokenizer
        self.model_name, self.max_model_len = model_name, max_model_len
        self._text: dict[str, _Text] = {}
        self._num_steps = self._num_aborted = 0

    def add_request(self, request_id: str, prompt: str | list[int], params: SamplingParams) -> None:
        if not isinstance(request_id, str) or not request_id:
            raise ValueError(f"request_id: must be a non-empty string, got {request_id!r}")
        params.validate()
        if params.n != 1:
            raise ValueError(f"n: the elastic (--esp) engine serves one sample per prompt, got n={params.n}")
        if params.logprobs is not None or params.return_output_logprobs:
            raise ValueError("logprobs: not available from the elastic (--esp) engine yet")
        ids = prompt_token_ids(prompt, self.tokenizer, self.cluster.model_config.vocab_size)
        if len(ids) + params.max_tokens > self.max_model_len:
            raise ValueError(f"prompt: {len(ids)} tokens + max_tokens {params.max_tokens} exceed the context "
                             f"limit {self.max_model_len}")
        self.cluster.add_request(request_id, ids, params)
        self._text[request_id] = _Text(IncrementalDetokenizer(self.tokenizer, ids, params.stop))

    def abort_request(self, request_id: str) -> None:
        if self.cluster.abort_request(request_id):
            self._num_aborted += 1
        self._text.pop(request_id, None)

    def has_unfinished_requests(self) -> bool:
        return self.cluster.has_unfinished_requests()

    def step(self, timeout: float | None = 0.05) -> list[RequestOutput]:
        """One turn of the cluster (it waits at most `timeout` for a batch to end, so requests that
        arrive meanwhile are planned promptly); the outputs of the requests that got a token."""
        self._num_steps += 1
        outputs = []
        for r in self.cluster.step(timeout=timeout):
            t = self._text.get(r.request_id)
            if t is None:  # aborted while its batch ran
                continue
            new = r.output[t.reported:]
            t.reported = len(r.output)
            for tok in new:
                t.detok.add(tok)
            finished = r.finish_reason is not None
            if not finished and t.detok.stopped:  # a stop string: end it here
                self.cluster.abort_request(r.request_id)
                r.finish_reason, r.finish_time, finished = "stop", self.cluster.now(), True
            if finished:
                t.detok.flush()
                del self._text[r.request_id]
            new_text = t.detok.take_delta(finished=finished)
            outputs.append(RequestOutput(
                request_id=r.request_id, prompt_token_ids=r.prompt, output_token_ids=list(r.output),
                new_token_ids=new, text=t.detok.emitted_text, new_text=new_text,
                logprobs=None, finished=finished, finish_reason=r.finish_reason, arrival_time=r.arrival,
                first_token_time=r.first_token_time, finish_time=r.finish_time))
        return outputs

    def stats(self) -> EngineStats:
        c = self.cluster
        running = sum(r.prefilled for r in c.requests.values())
        used = sum(c.placement.used(i) for i in range(c.placement.num_instances))
        return EngineStats(num_waiting=len(c.requests) - running, num_running=running, num_swapped=0,
                           device_kv_usage=used / sum(c.placement.capacities), host_kv_usage=0.0,
                           num_preemptions=c.num_paused, num_swapped_out=0, num_swapped_in=0,
                           num_steps=self._num_steps, num_finished=len(c.finished),
                           num_aborted=self._num_aborted,
                           policy_stats={"instances": c.placement.num_instances,
                                         "kv_used_per_instance": [c.placement.used(i)
                                                                  for i in range(c.placement.num_instances)]})

    def shutdown(self) -> None:
        self.cluster.shutdown()


def profile_cost_model(group: InstanceGroup, max_len: int = 2048, batches: tuple[int, ...] = (1, 2),
                       repeats: int = 2) -> tuple[ESPCostModel, dict[str, Any]]:
    """Fit T_k = A_k + B_k·Σl + C_k·Σl² (LoongServe's prefill model) for every ring size of `group`
    from its own prefill times (median of `repeats`) at lengths up to `max_len` (or one instance's
    pool), plus the KV bytes per token."""
    n, cap = group.num_instances, group.slots_per_instance
    base = max(8, min(cap, max_len))
    lengths = sorted({max(1, base // d) for d in (8, 4, 2, 1)})
    samples = []
    for k in range(1, n + 1):
        ring = tuple(range(k))
        for L in lengths:
            for b in batches:
                if L * b > cap * k:
                    continue
                times = sorted(group.time_prefill([L] * b, ring) for _ in range(repeats))
                samples.append(PrefillSample.of(k, [L] * b, times[len(times) // 2]))
    fit = fit_prefill(samples)
    cfg = group.model_config
    kv_bytes = 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * torch.finfo(torch.float32).bits // 8
    report = {str(k): {"mean_rel_err": s.mean_rel_err, "max_rel_err": s.max_rel_err, "samples": s.num_samples}
              for k, s in fit.report.items()}
    return ESPCostModel(fit.coeffs, kv_bytes_per_token=kv_bytes, bandwidth=1e9), report


def build_elastic_engine(config: EngineConfig, *, num_instances: int, esp: bool, backend: str = "ray",
                         log: Callable[[str], None] | None = None) -> ElasticEngine:
    """`config.model` on `num_instances` instances: LoongServe's scheduler over a cost model profiled on
    them (`esp`), or static replicas (each request on one instance for its whole life).

    Each instance's pool holds `config.cache.num_device_blocks × block_size` tokens when given, else
    the context limit; a prompt larger than one pool is served across instances under `esp`."""
    if num_instances < 1:
        raise ValueError(f"instances: must be >= 1, got {num_instances}")
    if esp and num_instances < 2:
        raise ValueError(f"esp: elastic sequence parallelism needs --instances >= 2, got {num_instances}")
    unsupported = {"quantization": config.quantization, "speculative_method": config.speculative.method,
                   "enable_prefix_caching": config.cache.enable_prefix_caching,
                   "kv_window_tokens": config.cache.kv_window_tokens}
    named = [k for k, v in unsupported.items() if v not in (None, False)]
    if named:
        raise ValueError(f"{named[0]}: not available with --instances (the elastic engine); leave it unset")
    if config.device.device not in ("cpu", "auto") or config.device.dtype != "float32":
        raise ValueError("device: the elastic engine runs float32 on CPU instances for now")
    model, tokenizer, name = load_model(config.model, "cpu", torch.float32, config.seed)
    max_len = config.max_model_len or model.config.max_position_embeddings
    if max_len > model.config.max_position_embeddings:
        raise ValueError(f"max_model_len: {max_len} exceeds the model's "
                         f"{model.config.max_position_embeddings} positions")
    blocks = config.cache.num_device_blocks
    slots = blocks * config.cache.block_size if blocks else max_len
    group = InstanceGroup(model.config, model.state_dict(), num_instances=num_instances,
                          slots_per_instance=slots, backend=backend)
    if esp:
        if log:
            log(f"profiling prefill on rings of 1..{num_instances} instances for the ESP cost model ...")
        cost, report = profile_cost_model(group)
        if log:
            log(f"fitted T_k = A + B·Σl + C·Σl² per ring size k; relative error {report}")
        scheduler: ElasticScheduler = LoongServeScheduler(
            cost, LoongServeConfig(max_num_seqs=config.scheduler.max_num_seqs * num_instances))
    else:  # static replicas: the cost model is not consulted for decisions with groups of one
        scheduler = StaticSPScheduler(ESPCostModel({1: PrefillCoeffs(0.0, 0.0, 0.0)}), 1,
                                      max_num_seqs=config.scheduler.max_num_seqs * num_instances)
    cluster = ElasticCluster(group, scheduler=scheduler, eos_token_id=tokenizer.eos_token_id)
    return ElasticEngine(cluster, tokenizer, f"{name}", max_len)
