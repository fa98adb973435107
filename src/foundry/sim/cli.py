"""`foundry sim`: simulate serving runs, sweep policies × rates, fit a cost model."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from foundry.cli_errors import bad_option, positive_list
from foundry.config_cli import config_options

app = typer.Typer(help="Serving simulator: the engine's policies on a virtual clock with cost models.",
                  no_args_is_help=True)

Cost = Annotated[str, typer.Option(help="opt-13b-a100[-tp2|-tp4], opt-66b-a100-tp2|tp4, "
                                        "roofline:GPU:MODEL[:tpN] (e.g. roofline:h100:llama-3-8b), "
                                        "or fitted:FILE.")]
Workload_ = Annotated[str, typer.Option("--workload",
                                         help="fixed, lognormal, pareto, azure-conv, azure-code.")]
TraceOpt = Annotated[Path | None, typer.Option(help="Trace CSV (Azure 2023 / Vidur); overrides --workload.")]
TraceArrivals = Annotated[bool, typer.Option(help="Replay the trace's arrival times.")]
TimeScale = Annotated[float, typer.Option(help="Trace replay speed-up (2 = twice as fast).")]
Cv = Annotated[float, typer.Option(help="Coefficient of variation of Gamma gaps (1 = Poisson).")]
NumRequests = Annotated[int, typer.Option(help="Requests to simulate.", min=1)]
PromptLen = Annotated[int, typer.Option(help="Prompt length (fixed) or median.", min=1)]
OutputLen = Annotated[int, typer.Option(help="Output length (fixed) or median.", min=1)]
LengthScale = Annotated[float, typer.Option(help="Multiply all lengths by this.")]
MaxPromptLen = Annotated[int | None, typer.Option(help="Clip prompt lengths.", min=1)]
MaxOutputLen = Annotated[int | None, typer.Option(help="Clip output lengths.", min=1)]
Seed = Annotated[int, typer.Option(help="Workload seed (arrivals and lengths).")]
BlockSize = Annotated[int, typer.Option(help="Tokens per KV block.", min=1)]
DevBlocks = Annotated[int | None, typer.Option(help="Device KV blocks (default: from GPU memory).", min=1)]
HostBlocks = Annotated[int | None, typer.Option(help="Host KV blocks (default: 56 GB of swap).", min=0)]
Link = Annotated[float | None, typer.Option(help="Host link GB/s for swaps (default: the GPU's PCIe).")]
MaxModelLen = Annotated[int | None, typer.Option(help="Context limit.", min=2)]
Overlap = Annotated[bool, typer.Option(help="Hide swap time behind compute (pipelined swapping).")]


# Deployment fields whose option is not `--field-name`.
OPTION_OF_FIELD = {"cost": "--cost", "gpu": "--cost", "model": "--cost"}


def _deployment(cost: str, block_size: int, num_device_blocks: int | None, num_host_blocks: int | None,
                link_gbs: float | None):
    from foundry.sim.deployment import resolve_deployment

    if link_gbs is not None and not link_gbs > 0:
        raise typer.BadParameter(f"must be > 0, got {link_gbs}", param_hint="--link-bandwidth-gbs")
    try:
        dep = resolve_deployment(cost, block_size=block_size, num_device_blocks=num_device_blocks,
                                 num_host_blocks=num_host_blocks,
                                 link_bandwidth=None if link_gbs is None else link_gbs * 1e9)
    except ValueError as e:
        raise bad_option(e, default="--cost", options=OPTION_OF_FIELD) from None
    if dep.fit_report is not None:
        typer.echo(f"cost model {cost}: {dep.fit_report}", err=True)
    return dep


def scheduler_options(**kwargs: Any) -> Any:
    """The scheduler's options (`SchedulerConfig` by flat names: the engine's), built into `scheduler`;
    a profile comes from the cost model here, so there is no --profile."""
    from foundry.serve.config import SchedulerConfig

    return config_options(SchedulerConfig, param="scheduler", exclude=("profile", *kwargs.pop("exclude", ())),
                          **kwargs)


def _check_policies(names: list[str], deployment, scheduler, option: str) -> None:
    """Build each policy once, so a bad name or option fails before any run; `option` lists the names."""
    from foundry.config_cli import bad_config
    from foundry.serve.config import SchedulerConfig
    from foundry.sim.run import make_policy

    if not names:
        raise typer.BadParameter("expected at least one policy", param_hint=option)
    for name in names:
        try:
            make_policy(scheduler.with_policy(name), deployment)
        except ValueError as e:  # pydantic's ValidationError is a ValueError too
            raise bad_config(e, SchedulerConfig, default=option, options={"policy": option}) from None


def _workload_factory(workload: str, trace: Path | None, trace_arrivals: bool, time_scale: float,
                      num_requests: int, prompt_len: int, output_len: int, length_scale: float,
                      max_prompt_len: int | None, max_output_len: int | None, seed: int):
    from foundry.serve.bench.trace import read_trace
    from foundry.serve.bench.workloads import build_workload

    tr = None
    if trace is not None:
        try:
            tr = read_trace(trace)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--trace") from None

    def make(rate: float, cv: float):
        try:
            return build_workload(num_requests=num_requests, rate=rate, cv=cv, generator=workload,
                                  prompt_len=prompt_len, output_len=output_len, trace=tr,
                                  trace_arrivals=trace_arrivals, time_scale=time_scale,
                                  length_scale=length_scale, max_prompt_len=max_prompt_len,
                                  max_output_len=max_output_len, seed=seed)
        except ValueError as e:
            raise bad_option(e, default="--workload") from None

    return make


@app.command("serve")
@scheduler_options(default_hint="--policy")
def serve_cmd(
    scheduler: Any,
    cost: Cost = "opt-13b-a100",
    workload: Workload_ = "fixed",
    trace: TraceOpt = None,
    trace_arrivals: TraceArrivals = False,
    time_scale: TimeScale = 1.0,
    rate: Annotated[float, typer.Option(help="Arrival rate, requests/s ('inf': all at once).")] = 4.0,
    cv: Cv = 1.0,
    num_requests: NumRequests = 1000,
    prompt_len: PromptLen = 128,
    output_len: OutputLen = 64,
    length_scale: LengthScale = 1.0,
    max_prompt_len: MaxPromptLen = None,
    max_output_len: MaxOutputLen = None,
    seed: Seed = 0,
    block_size: BlockSize = 16,
    num_device_blocks: DevBlocks = None,
    num_host_blocks: HostBlocks = None,
    link_bandwidth_gbs: Link = None,
    max_model_len: MaxModelLen = None,
    overlap_swap: Overlap = False,
    instances: Annotated[int, typer.Option("--instances", min=1,
                                           help="Instances (each a copy of the deployment).")] = 1,
    dispatch: Annotated[str, typer.Option(help="How requests are placed on instances: "
                                          "round-robin, least-loaded.")] = "round-robin",
    enable_prefix_caching: Annotated[bool, typer.Option(help="The engine's prefix cache on each instance.")]
    = False,
    shared_prefix_len: Annotated[int, typer.Option(
        min=0, help="The first N prompt tokens are common to all requests (a system prompt).")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON only.")] = False,
    system: Annotated[str | None, typer.Option(
        help="Simulate a system of the LoongServe comparison on 8 A800-like GPUs with LWM-7B-like step "
        "models instead of one engine: loongserve, splitfuse, vllm, disagg, static-sp (TP2·SP4), "
        "static-tp2x4, static-tp8. Reads --dataset, --rate, --num-requests, --seed, --json; the cost, "
        "policy and pool options do not apply.")] = None,
    dataset: Annotated[str, typer.Option(
        help="With --system: sharegpt, leval, lveval, mixed or zipf-ALPHA (e.g. zipf-1.2), look-alike "
        "length distributions (docs/loongserve-simulation.md).")] = "sharegpt",
) -> None:
    """Simulate one benchmark run; prints the same report as `foundry serve bench`."""
    from rich.console import Console

    from foundry.serve.bench.report import render_table
    from foundry.sim.dispatch import DISPATCHERS
    from foundry.sim.run import simulate_report

    if system is not None:
        _serve_system(system, dataset, rate, num_requests, seed, json_out)
        return
    dep = _deployment(cost, block_size, num_device_blocks, num_host_blocks, link_bandwidth_gbs)
    _check_policies([scheduler.policy], dep, scheduler, "--policy")
    if dispatch not in DISPATCHERS:
        raise typer.BadParameter(f"unknown {dispatch!r}; known: {', '.join(DISPATCHERS)}",
                                 param_hint="--dispatch")
    w = _workload_factory(workload, trace, trace_arrivals, time_scale, num_requests, prompt_len, output_len,
                          length_scale, max_prompt_len, max_output_len, seed)(rate, cv)
    result = simulate_report(w, dep, scheduler, max_model_len=max_model_len, overlap_swap=overlap_swap,
                             num_instances=instances, prefix_caching=enable_prefix_caching,
                             shared_prefix_len=shared_prefix_len,
                             dispatch=dispatch)
    result.info.update({"rate": rate, "cv": cv, "cost_model": dep.cost_model.describe()})
    if json_out:
        typer.echo(json.dumps(result.to_dict()))
        return
    Console().print(render_table(result))
    sim = result.info["simulator"]
    typer.echo(f"simulated {sim['num_steps']} steps ({sim['busy_time_s']:.1f} s busy) in "
               f"{sim['wall_time_s']:.2f} s; {sim['num_preemptions']} preemptions, "
               f"{sim['num_swapped_out']} swap-outs")
    for k, inst in enumerate(sim.get("instances", [])):
        e2e = "-" if inst["mean_e2e_s"] is None else f"{inst['mean_e2e_s']:.3f} s"
        typer.echo(f"  instance {k}: {inst['num_requests']} requests, mean E2E {e2e}, {inst['num_steps']} "
                   f"steps ({inst['busy_time_s']:.1f} s busy), {inst['num_preemptions']} preemptions")


def _serve_system(system: str, dataset: str, rate: float, num_requests: int, seed: int,
                  json_out: bool) -> None:
    """`sim serve --system`: one run of a LoongServe-comparison system, with the dataset's SLO score."""
    from rich.console import Console

    from foundry.serve.bench.report import render_table, summarize
    from foundry.sim.elastic.calibration import LWM7BA800
    from foundry.sim.elastic.slo import SLO_S, latency_summary, per_token_score, zipf_attainment
    from foundry.sim.elastic.systems import canonical, run_system
    from foundry.sim.elastic.workloads import dataset_workload

    try:
        name = canonical(system)
    except ValueError as e:
        raise bad_option(e, default="--system") from None
    if not rate > 0:
        raise typer.BadParameter(f"must be > 0 requests/s, got {rate}", param_hint="--rate")
    try:
        workload = dataset_workload(dataset, rate, num_requests, seed)
    except ValueError as e:
        raise bad_option(e, default="--dataset") from None
    models = LWM7BA800.fit()
    records = run_system(name, workload, dataset, models)
    lat = latency_summary(records)
    slo: dict[str, Any] = {"mean_per_token_latency_s": lat["per_token"],
                           "mean_input_token_latency_s": lat["input_token"],
                           "mean_output_token_latency_s": lat["output_token"]}
    if dataset in SLO_S:
        slo.update({"per_token_slo_s": SLO_S[dataset][0], "score": per_token_score(records, dataset)})
    else:
        slo["zipf_attainment"] = zipf_attainment(records, models.sp4_tp2)
    result = summarize(records, {"target": f"simulated system={name}", "system": name, "dataset": dataset,
                                 "rate": rate, "num_requests": num_requests, "seed": seed, "slo": slo})
    if json_out:
        typer.echo(json.dumps(result.to_dict()))
        return
    Console().print(render_table(result))
    line = f"mean per-token latency {lat['per_token'] * 1e3:.2f} ms"
    if "score" in slo:
        line += f" (SLO {slo['per_token_slo_s'] * 1e3:g} ms: score {slo['score']:.3f}, <= 1 meets it)"
    else:
        line += f"; {slo['zipf_attainment']:.1%} within the Zipf TTFT/TPOT SLO"
    typer.echo(line)


@app.command("sweep")
@scheduler_options(exclude=("policy",), default_hint="--policies")
def sweep_cmd(
    scheduler: Any,
    output_dir: Annotated[Path, typer.Option(help="Folder for sweep.csv and sweep.png.")] = Path("out/sim"),
    cost: Cost = "opt-13b-a100",
    policies: Annotated[str, typer.Option(help="Comma-separated policies.")] = "fcfs,vllm,mlfq,sj-mlfq,srpt",
    rates: Annotated[str, typer.Option(help="Comma-separated arrival rates (req/s).")] = "1,2,4,6,8",
    cvs: Annotated[str, typer.Option(help="Comma-separated arrival CVs (burstiness).")] = "1",
    workload: Workload_ = "pareto",
    trace: TraceOpt = None,
    trace_arrivals: TraceArrivals = False,
    time_scale: TimeScale = 1.0,
    num_requests: NumRequests = 1000,
    prompt_len: PromptLen = 128,
    output_len: OutputLen = 64,
    length_scale: LengthScale = 1.0,
    max_prompt_len: MaxPromptLen = None,
    max_output_len: MaxOutputLen = None,
    seed: Seed = 0,
    block_size: BlockSize = 16,
    num_device_blocks: DevBlocks = None,
    num_host_blocks: HostBlocks = None,
    link_bandwidth_gbs: Link = None,
    max_model_len: MaxModelLen = None,
    overlap_swap: Overlap = False,
) -> None:
    """Policies × rates × CVs through the simulator: writes sweep.csv and sweep.png."""
    from foundry.sim.sweep import plot, run_sweep, write_csv

    rate_list, cv_list = positive_list(rates, float, "--rates"), positive_list(cvs, float, "--cvs")
    names = [p.strip() for p in policies.split(",") if p.strip()]
    dep = _deployment(cost, block_size, num_device_blocks, num_host_blocks, link_bandwidth_gbs)
    _check_policies(names, dep, scheduler, "--policies")
    make = _workload_factory(workload, trace, trace_arrivals, time_scale, num_requests, prompt_len,
                             output_len, length_scale, max_prompt_len, max_output_len, seed)
    rows = run_sweep(make, dep, scheduler, names, rate_list, cv_list, max_model_len=max_model_len,
                     overlap_swap=overlap_swap)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_csv(rows, output_dir / "sweep.csv")
    title = f"{cost}, {workload}, {num_requests} requests, batch {scheduler.max_num_seqs}"
    plot(rows, output_dir / "sweep.png", title)
    for r in rows:
        typer.echo(f"{r['policy']:>8} rate {r['rate']:g} cv {r['cv']:g}: mean JCT {r['jct_mean']:.3f} s, "
                   f"P99 {r['jct_p99']:.3f} s, {r['s_per_token_mean']:.4f} s/token")
    typer.echo(f"wrote {output_dir / 'sweep.csv'} and {output_dir / 'sweep.png'}")


@app.command("fit")
def fit_cmd(
    source: Annotated[Path, typer.Argument(
        metavar="SOURCE", help="Step samples (fidelity.py) or a `foundry serve profile` JSON.")],
    output: Annotated[Path, typer.Option(help="Where to write the fitted cost model (JSON).")],
) -> None:
    """Fit prefill A + B·Σl + C·Σl² and decode a + b·Σctx + c·batch; print the fit error."""
    from foundry.sim.cost_models import load_fitted

    try:
        model, report = load_fitted(source)
    except ValueError as e:  # its messages are about --cost fitted:FILE; here the file is SOURCE
        raise typer.BadParameter(str(e).removeprefix("cost: "), param_hint="SOURCE") from None
    if report is None:
        raise typer.BadParameter("already a fitted cost model, nothing to fit", param_hint="SOURCE")
    model.save(output)
    A, B, C = model.prefill
    a, b, c = model.decode
    typer.echo(f"prefill = {A * 1e3:.4g} ms + {B * 1e3:.4g} ms·Σl + {C * 1e3:.4g} ms·Σl²")
    typer.echo(f"decode  = {a * 1e3:.4g} ms + {b * 1e3:.4g} ms·Σctx + {c * 1e3:.4g} ms·batch")
    typer.echo(str(report))
    typer.echo(f"wrote {output}")
    if not math.isfinite(report.mean_rel_error):
        raise typer.Exit(1)
