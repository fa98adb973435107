"""`foundry serve`: run the OpenAI-compatible server; `foundry serve bench`: the load generator.

Engine options are made from ``foundry.serve.EngineConfig``'s fields (``foundry.config_cli``): each
defaults to None, meaning "EngineConfig's default", so every default and description lives there.
Heavy imports (torch, fastapi) happen inside the commands.
"""

from __future__ import annotations

import errno
import json
import signal
import socket
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from foundry.cli_errors import bad_option, positive_list
from foundry.config_cli import config_options

app = typer.Typer(
    help="Serve an LLM over an OpenAI-compatible HTTP API (no sub-command), or benchmark one (bench).",
    add_completion=False,
)

def _build_engine(config: Any):
    """The engine; a policy that needs a latency profile and got none measures this engine first."""
    from foundry.serve import LLMEngine
    from foundry.serve.policies import build_policy, needs_profile

    measure = needs_profile(config.scheduler) and config.scheduler.profile is None
    try:
        engine = LLMEngine(config, build_policy(config.scheduler.with_policy("fcfs")) if measure else None)
    except (ValueError, FileNotFoundError) as e:
        hint = "--profile" if str(e).startswith("profile") else "--model"
        raise typer.BadParameter(str(e), param_hint=hint) from None
    if measure:
        from foundry.serve.profile import measure_profile

        typer.echo(f"policy {config.scheduler.policy}: measuring a latency profile of this engine (pass "
                   "--profile FILE to reuse one from `foundry serve profile`) ...", err=True)
        engine = engine.rebuilt(config, build_policy(config.scheduler, measure_profile(engine, repeats=2)))
    return engine


def _build_elastic(config: Any, instances: int, esp: bool, backend: str) -> Any:
    """The elastic cluster (serve.elastic) behind the same server; a bad option names its flag."""
    from foundry.serve.elastic.engine import build_elastic_engine

    try:
        return build_elastic_engine(config, num_instances=instances, esp=esp, backend=backend,
                                    log=lambda m: typer.echo(m, err=True))
    except (ValueError, FileNotFoundError) as e:
        raise bad_option(e, default="--model") from None


def engine_options(**kwargs: Any) -> Any:
    """The engine's options (every `EngineConfig` field by its flat name), built into `config`."""
    from foundry.serve.config import EngineConfig

    return config_options(EngineConfig, default_hint="--model", **kwargs)


DEFAULT_PROFILE = Path("out/profile.json")  # out/ is git-ignored
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def _exit_normally(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def _bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (as uvicorn binds it); a port in use exits with one line."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            msg = f"port {port} on {host} is already in use; pick another with --port"
        else:  # e.g. an address this machine does not have, or a port below 1024 without privileges
            msg = f"cannot listen on {host} port {port}: {e.strerror or e}; check --host and --port"
        typer.echo(f"error: {msg}", err=True)
        raise typer.Exit(1) from None
    return sock


@app.callback(invoke_without_command=True)
@engine_options()
def serve(
    ctx: typer.Context,
    config: Any,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.", min=0, max=65535)] = 8000,
    max_waiting: Annotated[
        int, typer.Option(help="Most requests waiting for admission; more are refused with 429.", min=1)
    ] = 256,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    instances: Annotated[int, typer.Option(
        help="Engine instances, each with its own KV pool (>1: the elastic cluster, as Ray processes).",
        min=1)] = 1,
    esp: Annotated[bool, typer.Option(
        "--esp/--no-esp", help="LoongServe's elastic sequence parallelism across the instances "
        "(a prompt may span several); without it each request stays on one instance.")] = False,
    instance_backend: Annotated[str, typer.Option(
        help="With --instances: 'ray' (processes, torch.distributed gloo) or 'local' (threads).")] = "ray",
) -> None:
    """Run the OpenAI-compatible server (when no sub-command is given)."""
    if ctx.invoked_subcommand is not None:
        return
    if log_level not in LOG_LEVELS:
        raise typer.BadParameter(
            f"expected one of {', '.join(LOG_LEVELS)}, got {log_level!r}", param_hint="--log-level"
        )
    import uvicorn

    from foundry.serve.server import create_app

    if instance_backend not in ("ray", "local"):
        raise typer.BadParameter(f"expected ray or local, got {instance_backend!r}",
                                 param_hint="--instance-backend")
    with _bind(host, port) as sock:  # before the model loads: a taken port fails at once
        if instances > 1 or esp:
            engine = _build_elastic(config, instances, esp, instance_backend)
            what = f"{instances} instances, {'ESP' if esp else 'one instance per request'}"
        else:
            engine = _build_engine(config)
            what = f"policy {config.scheduler.policy}"
        port = sock.getsockname()[1]  # the one the OS chose for --port 0
        typer.echo(f"serving {engine.model_name} ({what}) on http://{host}:{port}", err=True)
        # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the handler that was
        # installed before it; make that handler a normal exit (status 0, buffered output flushed).
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _exit_normally)
        server = uvicorn.Server(uvicorn.Config(create_app(engine, max_waiting=max_waiting), host=host,
                                               port=port, log_level=log_level, timeout_graceful_shutdown=5))
        server.run(sockets=[sock])
    if not server.started:
        raise typer.Exit(3)  # as uvicorn.run: the app failed to start (uvicorn logged why)


@app.command()
@engine_options(passthrough=("model",), helps={
    "model": "'foundry-tiny' or a local Hugging Face checkpoint directory [default: foundry-tiny]; over "
             "HTTP: the served model name [default: the server's]"})
def bench(
    url: Annotated[str | None, typer.Option(help="Server base URL, e.g. http://127.0.0.1:8000.")] = None,
    wait: Annotated[
        float, typer.Option(help="With --url: wait up to this many seconds for the server to be healthy.")
    ] = 0.0,
    in_process: Annotated[
        bool, typer.Option("--in-process", help="Drive an engine in this process.")
    ] = False,
    workload: Annotated[
        str, typer.Option(help="Length generator: fixed, lognormal, pareto, azure-conv, azure-code.")
    ] = "fixed",
    trace: Annotated[
        Path | None, typer.Option(help="Trace CSV (Azure LLM 2023 layout, or Vidur's); overrides --workload.")
    ] = None,
    trace_arrivals: Annotated[bool, typer.Option(help="Replay the trace's arrival times.")] = False,
    time_scale: Annotated[float, typer.Option(help="Trace replay speed-up (2 = twice as fast).")] = 1.0,
    rate: Annotated[float, typer.Option(help="Arrival rate, requests/s ('inf': all at once).")] = 4.0,
    cv: Annotated[float, typer.Option(help="Coefficient of variation of Gamma gaps (1 = Poisson).")] = 1.0,
    num_requests: Annotated[int, typer.Option(help="Most requests to send.", min=1)] = 100,
    duration: Annotated[
        float | None, typer.Option(help="Send only arrivals before this many seconds.")
    ] = None,
    prompt_len: Annotated[int, typer.Option(help="Prompt length (fixed) or median.", min=1)] = 128,
    output_len: Annotated[int, typer.Option(help="Output length (fixed) or median.", min=1)] = 64,
    length_scale: Annotated[float, typer.Option(help="Multiply all lengths by this (small models).")] = 1.0,
    max_prompt_len: Annotated[int | None, typer.Option(help="Clip prompt lengths.", min=1)] = None,
    max_output_len: Annotated[int | None, typer.Option(help="Clip output lengths.", min=1)] = None,
    bench_seed: Annotated[int, typer.Option(help="Seed of the workload (arrivals, lengths, prompts).")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON only.")] = False,
    model: str | None = None,
    config: Any = None,
) -> None:
    """Open-loop load generator: TTFT, TPOT, E2E latency (JCT), s/token, throughput."""
    from foundry.serve.bench.report import render_table
    from foundry.serve.bench.runner import HttpTarget, InProcessTarget, context_length, run_benchmark
    from foundry.serve.bench.trace import read_trace
    from foundry.serve.bench.workloads import build_workload, fit_to_context

    if (url is None) == (not in_process):
        raise typer.BadParameter("give exactly one of --url URL or --in-process", param_hint="--url")
    try:
        tr = read_trace(trace) if trace is not None else None
        wl = build_workload(
            num_requests=num_requests,
            rate=rate,
            cv=cv,
            duration=duration,
            generator=workload,
            prompt_len=prompt_len,
            output_len=output_len,
            trace=tr,
            trace_arrivals=trace_arrivals,
            time_scale=time_scale,
            length_scale=length_scale,
            max_prompt_len=max_prompt_len,
            max_output_len=max_output_len,
            seed=bench_seed,
        )
    except ValueError as e:
        raise bad_option(e, default="--workload") from None
    if len(wl) == 0:
        raise typer.BadParameter("no request arrives before --duration", param_hint="--duration")
    if in_process:
        target: Any = InProcessTarget(_build_engine(config))
    else:
        target = HttpTarget(url.rstrip("/"), model=model, wait_s=wait)
    info = {
        "rate": rate,
        "cv": cv,
        "trace": str(trace) if trace else None,
        "trace_arrivals": trace_arrivals,
        "generator": None if trace else workload,
        "seed": bench_seed,
    }
    import httpx

    try:
        context = context_length(target)
    except (OSError, httpx.HTTPError) as e:  # e.g. nothing listening at --url
        raise typer.BadParameter(f"cannot reach {url}: {e}", param_hint="--url") from None
    except (LookupError, TypeError, ValueError):
        raise typer.BadParameter(f"{url}/v1/models is not an OpenAI model list", param_hint="--url") from None
    if context is None:
        typer.echo(f"note: {url} reports no max_model_len; the requests are sent as generated", err=True)
    else:  # a request longer than the context would only come back as HTTP 400
        try:
            wl, num_clipped = fit_to_context(wl, context)
        except ValueError as e:  # a context too short for any request
            raise typer.BadParameter(f"cannot fit the workload to {target.describe()}: {e}",
                                     param_hint="--url" if url else "--max-model-len") from None
        info.update(max_model_len=context, num_clipped=num_clipped)
        if num_clipped:
            typer.echo(f"clipped {num_clipped} of {len(wl)} requests to the context of {context} tokens "
                       "(prompt + output <= max_model_len)", err=True)
    if not json_out:
        typer.echo(f"sending {len(wl)} requests ({wl.name}) to {target.describe()} ...", err=True)
    try:
        result = run_benchmark(wl, target, seed=bench_seed, info=info)
    except (OSError, httpx.HTTPError) as e:  # e.g. the server went away
        raise typer.BadParameter(f"cannot reach {url}: {e}", param_hint="--url") from None
    if json_out:
        sys.stdout.write(json.dumps(result.to_dict(), allow_nan=False) + "\n")
    else:
        from rich.console import Console

        Console().print(render_table(result))
    failed = [r for r in result.records if not r.ok]
    if failed:
        first = failed[0].error or "no output token received"
        num = len(result.records)
        typer.echo(f"error: {len(failed)} of {num} requests failed; the first: {first}", err=True)
        raise typer.Exit(1)


@app.command("profile")
@engine_options(fixed={"policy": "fcfs"}, only=("model", "block_size", "max_num_seqs",
                                                "max_num_batched_tokens", "max_model_len", "seed", "device",
                                                "dtype"))
def profile_cmd(
    output: Annotated[Path, typer.Option(help="Where to write the profile (JSON).")] = DEFAULT_PROFILE,
    prefill_lens: Annotated[
        str, typer.Option(help="Comma-separated prompt lengths to time (beyond the context: skipped).")
    ] = "8,16,32,64,128,256,384,512,768,1024",
    decode_batches: Annotated[str, typer.Option(help="Comma-separated decode batch sizes.")] = "1,2,4,8,16",
    repeats: Annotated[int, typer.Option(help="Runs per point (the median is kept).", min=1)] = 3,
    config: Any = None,
) -> None:
    """Measure this engine on this model (prefill time by length, decode step time) for the MLFQ policies."""
    from foundry.serve.policies import skip_join_level
    from foundry.serve.profile import PAPER_BASE_QUANTUM_S, measure_profile, scaled_base_quantum

    lens = tuple(positive_list(prefill_lens, int, "--prefill-lens"))
    batches = tuple(positive_list(decode_batches, int, "--decode-batches"))
    engine = _build_engine(config)
    try:
        prof = measure_profile(engine, lens, batches, repeats=repeats)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--prefill-lens") from None
    output.parent.mkdir(parents=True, exist_ok=True)
    prof.save(output)
    q_auto = scaled_base_quantum(prof)
    typer.echo(f"wrote {output}: {engine.model_name} on {engine.device}")
    auto_col = f"level q0={q_auto * 1e3:.2f}ms"
    typer.echo(f"{'prompt':>7} {'prefill ms':>11} {'level q0=10ms':>14} {auto_col:>17}")
    for n, t in zip(prof.prefill_lens, prof.prefill_times, strict=True):
        typer.echo(f"{n:>7} {t * 1e3:>11.2f} {skip_join_level(t, PAPER_BASE_QUANTUM_S):>14} "
                   f"{skip_join_level(t, q_auto):>17}")
    pairs = zip(prof.decode_batches, prof.decode_times, strict=True)
    steps = ", ".join(f"{b}: {t * 1e3:.2f}" for b, t in pairs)
    typer.echo(f"decode step ms by batch size: {steps}")
    typer.echo(f"--mlfq-base-quantum auto = {q_auto * 1e3:.3f} ms "
               "(the paper's 10 ms x this batch-1 decode step / 19.93 ms)")
