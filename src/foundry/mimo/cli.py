"""`foundry mimo …`: sum-rate sweeps and the standard figure set."""

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from foundry.config_cli import config_options
from foundry.mimo.sweep import SweepConfig

app = typer.Typer(
    help="Widely-linear precoding for massive MIMO under transmit IQ imbalance (arXiv 1702.08703).",
    no_args_is_help=True,
)

_Opt = typer.Option


def _load_config_file(path: Path) -> dict:
    if not path.is_file():
        raise typer.BadParameter(f"no such file: {path}", param_hint="--config")
    text = path.read_text()
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as err:
        raise typer.BadParameter(f"cannot parse {path}: {err}", param_hint="--config") from err
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path} must hold a mapping of sweep fields", param_hint="--config")
    return data


def _validated(fields: dict, config: Path | None):
    """Build the SweepConfig; on failure raise BadParameter naming the offending option(s)."""
    from pydantic import ValidationError

    from foundry.mimo.sweep import SweepConfig

    try:
        return SweepConfig(**fields)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            loc = [str(x) for x in e["loc"] if not isinstance(x, int)]
            msg = e["msg"].removeprefix("Value error, ")
            if loc:
                names = ["--" + loc[0].replace("_", "-")]
            elif "per_stream" in msg:  # cross-field checks of the model
                names = ["--rate", "--user-antennas"]
            else:
                names = ["--bs-antennas", "--users", "--user-antennas"]
            problems.append((", ".join(names), msg))
        hint = ", ".join(dict.fromkeys(n for n, _ in problems))
        if config is not None:
            hint += f" (in --config {config})"
        text = problems[0][1] if len(problems) == 1 else "; ".join(f"{n}: {m}" for n, m in problems)
        raise typer.BadParameter(text, param_hint=hint) from err


@app.command()
@config_options(SweepConfig, param="given", build=False, exclude=("chunk",))
def sweep(
    given: dict,
    config: Annotated[
        Path | None, _Opt(help="YAML/JSON file with the same fields; options override it")
    ] = None,
    out: Annotated[Path | None, _Opt(help="folder for sweep.csv and sweep.png")] = None,
    as_json: Annotated[bool, _Opt("--json", help="print the rows as JSON on stdout, nothing else")] = False,
) -> None:
    """Sum rate vs SNR of conventional and widely-linear precoders, ideal IQ vs IQ imbalance."""
    from foundry.mimo import sweep as sweep_mod

    fields = _load_config_file(config) if config else {}
    fields.update(given)
    cfg = _validated(fields, config)

    start = time.perf_counter()
    rows = sweep_mod.run(cfg)
    elapsed = time.perf_counter() - start
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        sweep_mod.write_csv(rows, out / "sweep.csv")
        sweep_mod.plot(cfg, rows, out / "sweep.png")
    if as_json:
        keys = ("precoder", "iq", "snr_db", "sum_rate", "std_err")
        typer.echo(json.dumps([{k: r[k] for k in keys} for r in rows]))
        return
    _print_table(cfg, rows, elapsed, out)


def _print_table(cfg, rows: list[dict], elapsed: float, out: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"sum rate (bit/s/Hz), mean of {cfg.draws} draws")
    table.add_column("precoder")
    table.add_column("IQ")
    for s in cfg.snr_db:
        table.add_column(f"{s:g} dB", justify="right")
    for name in cfg.precoders:
        for iq in ("ideal", "iqi"):
            vals = [r["sum_rate"] for r in rows if r["precoder"] == name and r["iq"] == iq]
            table.add_row(name, iq, *(f"{v:.1f}" for v in vals))
    console = Console()
    console.print(table)
    where = f"; wrote {out / 'sweep.csv'} and {out / 'sweep.png'}" if out else ""
    console.print(f"{elapsed:.2f} s{where}")


@app.command()
def figures(
    out: Annotated[Path, _Opt(help="folder for the PNGs and their CSV data")] = Path("out/mimo_figures"),
    draws: Annotated[int, _Opt(help="channel draws per point (the BER and loss panels scale with it)")] = 200,
    seed: Annotated[int, _Opt(help="random seed")] = 0,
) -> None:
    """Reproduce the standard figure set: sum rate (ZF/MMSE/MF, BD), BER, WL-ZF power loss vs load."""
    from foundry.mimo import figures as figures_mod

    if draws < 2:
        raise typer.BadParameter(f"must be ≥ 2, got {draws}", param_hint="--draws")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for path in figures_mod.standard_set(out, draws=draws, seed=seed):
        typer.echo(f"wrote {path}")
    typer.echo(f"{time.perf_counter() - start:.1f} s")
