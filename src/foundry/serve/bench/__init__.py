"""The load generator behind `foundry serve bench`: arrivals, workloads, trace reader, runner, report."""

from foundry.serve.bench.report import BenchResult, RequestRecord
from foundry.serve.bench.runner import HttpTarget, InProcessTarget, run_benchmark
from foundry.serve.bench.workloads import RequestSpec, Workload, build_workload

__all__ = [
    "BenchResult",
    "HttpTarget",
    "InProcessTarget",
    "RequestRecord",
    "RequestSpec",
    "Workload",
    "build_workload",
    "run_benchmark",
]
