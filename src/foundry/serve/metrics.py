"""Prometheus metrics of one server, in a registry of its own (no global state).

Engine state (queue lengths, KV usage, cumulative preemption and swap counts) is read from the
``AsyncEngine``'s latest stats snapshot at scrape time by a custom collector; per-request latencies
(TTFT, TPOT, E2E) are observed when a request finishes, from the engine's own timestamps. A policy's
own series (``Policy.stats()``, e.g. MLFQ queue levels and demotions) come with the snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

PREFIX = "foundry"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 120.0)
TOKEN_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _EngineCollector:
    """Gauges and counters read from the engine's stats snapshot when Prometheus scrapes."""

    def __init__(self, stats: Callable[[], Any]) -> None:
        self._stats = stats

    def collect(self):
        s = self._stats()
        gauges = (
            ("num_requests_waiting", "Requests waiting to be scheduled.", s.num_waiting),
            ("num_requests_running", "Requests in the running batch.", s.num_running),
            ("num_requests_swapped", "Requests whose KV cache is swapped out to host memory.", s.num_swapped),
            ("kv_cache_usage_ratio", "Fraction of device KV-cache blocks in use.", s.device_kv_usage),
            ("host_kv_cache_usage_ratio", "Fraction of host KV-cache blocks in use.", s.host_kv_usage),
            ("weight_version", "Version of the weights the engine samples with (RL weight sync).",
             s.weight_version),
        )
        if getattr(s, "prefix_cache_hit_rate", None) is not None:  # prefix caching is on
            gauges += (
                ("prefix_cache_hit_rate", "Prompt tokens found in the prefix cache / tokens looked up.",
                 s.prefix_cache_hit_rate),
                ("prefix_cache_blocks", "Device KV blocks the prefix cache can find by content.",
                 s.num_cached_blocks),
            )
        if getattr(s, "spec_acceptance_rate", None) is not None:  # speculative decoding is on
            gauges += (("spec_decode_acceptance_rate", "Speculative draft tokens kept / proposed.",
                        s.spec_acceptance_rate),
                       ("spec_decode_draft_tokens", "Speculative draft tokens proposed.",
                        s.spec_draft_tokens))
        for name, doc, value in gauges:
            g = GaugeMetricFamily(f"{PREFIX}_{name}", doc)
            g.add_metric([], float(value))
            yield g
        counters = (
            ("num_preemptions", "Preemptions of running requests.", s.num_preemptions),
            ("num_swapped_out", "Requests swapped out to host memory.", s.num_swapped_out),
            ("num_swapped_in", "Requests swapped back in to device memory.", s.num_swapped_in),
        )
        for name, doc, value in counters:
            c = CounterMetricFamily(f"{PREFIX}_{name}", doc)
            c.add_metric([], float(value))
            yield c
        yield from _policy_metrics(getattr(s, "policy_stats", None) or {})


def _policy_metrics(ps: dict):
    """MLFQ-family series (FastServe): requests per queue level, demotions, starvation promotions."""
    if "queue_levels" in ps:
        g = GaugeMetricFamily(f"{PREFIX}_mlfq_queue_requests", "Requests per MLFQ queue level.",
                              labels=["level"])
        for level, n in enumerate(ps["queue_levels"]):
            g.add_metric([str(level)], float(n))
        yield g
    counters = (
        ("num_demotions", "mlfq_demotions", "MLFQ demotions (a job used up its level's quantum)."),
        ("num_promotions", "mlfq_starvation_promotions", "MLFQ starvation promotions to level 0."),
        ("num_deferred_prefills", "mlfq_deferred_prefills", "Prefills deferred under host-swap pressure."),
    )
    for key, name, doc in counters:
        if key in ps:
            c = CounterMetricFamily(f"{PREFIX}_{name}", doc)
            c.add_metric([], float(ps[key]))
            yield c


class ServerMetrics:
    """All series of one server. ``on_step`` is the ``AsyncEngine`` callback (runs in the engine thread)."""

    def __init__(self, engine_stats: Callable[[], Any]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_EngineCollector(engine_stats))
        r = self.registry
        self.ttft = Histogram(
            f"{PREFIX}_time_to_first_token_seconds",
            "Time to first token.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            f"{PREFIX}_time_per_output_token_seconds",
            "Mean time per output token after the first, per request.",
            buckets=TOKEN_LATENCY_BUCKETS,
            registry=r,
        )
        self.e2e = Histogram(
            f"{PREFIX}_e2e_request_latency_seconds",
            "End-to-end request latency (arrival to last token).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.finished = Counter(
            f"{PREFIX}_requests_finished",
            "Finished requests by finish reason.",
            ["finish_reason"],
            registry=r,
        )
        self.prompt_tokens = Counter(
            f"{PREFIX}_prompt_tokens", "Prompt tokens of finished requests.", registry=r
        )
        self.generation_tokens = Counter(f"{PREFIX}_generation_tokens", "Generated tokens.", registry=r)
        self.rejected = Counter(
            f"{PREFIX}_requests_rejected", "Requests refused with 429 (waiting queue full).", registry=r
        )

    def on_step(self, outputs: list, stats: Any) -> None:
        for out in outputs:
            self.generation_tokens.inc(len(out.new_token_ids))
            if not out.finished:
                continue
            self.finished.labels(out.finish_reason or "unknown").inc()
            self.prompt_tokens.inc(len(out.prompt_token_ids))
            if out.first_token_time is None or out.finish_time is None:
                continue
            self.ttft.observe(out.first_token_time - out.arrival_time)
            self.e2e.observe(out.finish_time - out.arrival_time)
            n = len(out.output_token_ids)
            if n >= 2:
                self.tpot.observe((out.finish_time - out.first_token_time) / (n - 1))

    def render(self) -> bytes:
        return generate_latest(self.registry)
