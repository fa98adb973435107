"""`foundry pde`: generate data, train, evaluate and predict with PDEformer.

Heavy imports (torch, h5py) happen inside the commands so `foundry --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from foundry.config_cli import config_options
from foundry.pde.data.generate2d_config import Generate2DConfig
from foundry.pde.training.config import TrainConfig

app = typer.Typer(help="PDEformer-1: symbolic PDE -> graph Transformer -> INR.", no_args_is_help=True)


@app.command()
def generate(
    out: Path = typer.Option(..., help="HDF5 file to write (resumed if it exists)."),
    num_samples: int = typer.Option(1000, help="Accepted samples wanted."),
    seed: int = typer.Option(0, help="Base seed; the data depend only on seed and chunk size."),
    num_x: int = typer.Option(128, help="Grid points in x (periodic on [-1, 1))."),
    num_t: int = typer.Option(101, help="Saved frames on t in [0, 1]."),
    dt: float = typer.Option(2e-4, help="Solver time step."),
    num_mod: int = typer.Option(3, help="Modulation nodes in stored graphs (= INR layers - 1)."),
    boundary: str = typer.Option("periodic", help="periodic, or robin (D/N/Robin drawn at each end)."),
    coef_range: float = typer.Option(3.0, help="Coefficients drawn from U[-r, r] (3: reference cU3)."),
    advection_share: float = typer.Option(
        0.0, help="Share of pure transport members u_t + (c u - k u_x)_x = 0."
    ),
    chunk_size: int = typer.Option(64, help="Candidates solved as one batch (the data depend on it)."),
    workers: int = typer.Option(1, help="Worker processes."),
    device: str | None = typer.Option(
        None, help="Solve with the torch solver on this device (cuda) [numpy]."
    ),
    family: str = typer.Option("sinus0", help="sinus0, or sinus-trig (+ two sin/cos terms; periodic)."),
) -> None:
    """Generate the PDEformer-1 pretraining family (sinus0), or sinus-trig, into HDF5."""
    from foundry.pde.data.generate import GenerateConfig
    from foundry.pde.data.generate import generate as run

    try:
        cfg = GenerateConfig(
            num_samples=num_samples,
            seed=seed,
            num_x=num_x,
            num_t=num_t,
            dt=dt,
            num_mod=num_mod,
            boundary=boundary,
            coef_range=coef_range,
            advection_share=advection_share,
            chunk_size=chunk_size,
        )
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    if workers < 1:
        raise typer.BadParameter("--workers must be >= 1")
    if family not in ("sinus0", "sinus-trig"):
        raise typer.BadParameter(f"--family must be sinus0 or sinus-trig, got {family!r}")
    try:
        if family == "sinus-trig":
            from foundry.pde.data.sinus_trig import generate_trig

            n = generate_trig(cfg, out, num_workers=workers)
        else:
            n = run(cfg, out, num_workers=workers, device=device)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    typer.echo(f"{out}: {n} samples")


@app.command("generate2d")
@config_options(Generate2DConfig, param="cfg")
def generate2d_cmd(
    cfg: Generate2DConfig,
    out: Path = typer.Option(..., help="HDF5 file to write (resumed if it exists with the same settings)."),
) -> None:
    """Generate one PDEformer-2 family on 2-D domains (solutions and graphs) into HDF5."""
    from foundry.pde.data.generate2d import generate2d

    try:
        n = generate2d(cfg, out)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    typer.echo(f"{out}: {n} rows of {cfg.family}")


@app.command()
@config_options(TrainConfig, param="cfg", default_hint="--train-data")
def train(cfg: TrainConfig) -> None:
    """Train a PDEformer (single process, or DDP when launched with torchrun).

    Writes last.pt (resume point) and best.pt (lowest held-out error; without --test-data, the
    final weights) into --out-dir. Ctrl-C saves both and stops; the same command then resumes.
    """
    import os

    from foundry.pde.training.progress import TrainProgress
    from foundry.pde.training.train import TrainingInterrupted, select_device
    from foundry.pde.training.train import train as run

    for name in ("train_data", "test_data", "init_from"):
        path = getattr(cfg, name)
        if path is not None and not path.exists():
            raise typer.BadParameter(f"{path} does not exist", param_hint=f"--{name.replace('_', '-')}")
    try:
        select_device(cfg.device)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--device") from None
    is_rank0 = os.environ.get("RANK", "0") == "0"
    if is_rank0:
        typer.echo(f"loading {cfg.train_data}" + (f" and {cfg.test_data}" if cfg.test_data else ""), err=True)
        if cfg.test_data is None:
            typer.echo("no --test-data: best.pt will hold the final weights (nothing held out)", err=True)
    try:
        with TrainProgress(cfg.max_steps, disable=not is_rank0) as progress:
            summary = run(cfg, on_step=progress)
    except TrainingInterrupted as e:
        where = f"saved last.pt and best.pt at step {e.step} in {e.out_dir}; rerun the same command to resume"
        typer.echo(f"interrupted: {where if e.saved else 'no step finished, nothing saved'}", err=True)
        raise typer.Exit(130) from None
    except KeyboardInterrupt:
        typer.echo("interrupted before training started: nothing saved", err=True)
        raise typer.Exit(130) from None
    except (FileNotFoundError, ValueError) as e:  # data or checkpoint files; the message names the file
        raise typer.BadParameter(str(e)) from None
    best = summary["best_rel_l2"]
    typer.echo(
        f"done: step {summary['step']}, "
        + (f"best held-out rel-L2 {best:.4f}" if best is not None else "no held-out set")
        + f", checkpoints in {summary['out_dir']}"
    )


@app.command("eval")
def evaluate_cmd(
    data: Path = typer.Option(..., help="HDF5 file or folder to evaluate on (full grid)."),
    checkpoint: Path | None = typer.Option(
        None, help="Checkpoint; default: the shipped 1-D or 2-D XS model."
    ),
    limit: int | None = typer.Option(None, help="Evaluate only the first N samples."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N or mps."),
) -> None:
    """Relative L2 error of a checkpoint on every sample of a file or folder (full grid, inside domains)."""
    import numpy as np

    from foundry.pde.data.dataset import PDEDataset
    from foundry.pde.inference import default_checkpoint2d, load_model
    from foundry.pde.models.pdeformer import PDEformer
    from foundry.pde.training.evaluate import evaluate
    from foundry.pde.training.train import select_device

    try:
        dev = select_device(device)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--device") from None

    def load(path: Path | None) -> PDEformer:
        try:
            return load_model(path, dev)[0]
        except (FileNotFoundError, ValueError) as e:
            raise typer.BadParameter(str(e), param_hint="--checkpoint") from None

    model = load(checkpoint) if checkpoint is not None else None  # a bad file is refused before the data
    try:
        ds = PDEDataset(data, limit=limit)
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e), param_hint="--data") from None
    if model is None:  # the shipped checkpoint of the data's dimension
        model = load(default_checkpoint2d() if ds.dim == 2 else None)
    if model.config.num_coords - 1 != ds.dim or int(ds.attrs["num_mod"]) != model.config.num_mod:
        raise typer.BadParameter(
            f"the checkpoint is a {model.config.num_coords - 1}-D model with num_mod={model.config.num_mod}; "
            f"{data} holds {ds.dim}-D data with num_mod={int(ds.attrs['num_mod'])}",
            param_hint="--checkpoint",
        )
    err = evaluate(model, ds, device=dev)
    lo, hi = np.percentile(err, [1, 99])
    inside = err[(err >= lo) & (err <= hi)]
    centered = inside.mean() if inside.size else err.mean()  # a handful of samples may leave none inside
    typer.echo(
        f"{len(err)} samples: mean rel-L2 {err.mean():.4f}, median {np.median(err):.4f}, "
        f"centered (1-99 pct) mean {centered:.4f}"
    )


@app.command()
def predict(
    equation: str = typer.Argument(..., help='PDE in text form, e.g. "u_t + (0.5*u^2)_x - 0.01*u_xx = 0".'),
    ic: str | None = typer.Option(
        None,
        help='Initial condition u(0, x), e.g. "sin(pi*x)"; 2-D: one per unknown with a time derivative '
        "(';'-separated), none for a time-independent problem.",
    ),
    out: Path = typer.Option(
        Path("out/pde/u.npz"), help="Output .npz (arrays t, x, u[len(t), len(x)]); a .png beside it."
    ),
    checkpoint: Path | None = typer.Option(None, help="Checkpoint; default: the shipped XS model."),
    nt: int | None = typer.Option(None, help="Uniform t points on [0, 1] [1-D: 101, 2-D: 21]."),
    nx: int | None = typer.Option(
        None, help="Uniform x points on [-1, 1) (2-D: x and y on [0, 1]) [128; 64]."
    ),
    t_points: str | None = typer.Option(None, help="Comma-separated t values (overrides --nt)."),
    x_points: str | None = typer.Option(None, help="Comma-separated x values (overrides --nx)."),
    reference: bool = typer.Option(False, help="Also solve numerically (u_ref) and report the relative L2."),
    plot: bool = typer.Option(True, help="Write a .png next to the .npz."),
    domain: str | None = typer.Option(
        None,
        help="2-D: periodic, square, disk[:R[,cx,cy]] or sdf:<expr in x, y> (2-D default: periodic).",
    ),
    bc: list[str] = typer.Option([], help='2-D boundary condition, repeatable: "circle: u + 0.5*u_n = 0".'),
    unknowns: str = typer.Option(
        "u", help="2-D: the unknowns, e.g. u,v (equations and ICs separated by ';')."
    ),
    target: int = typer.Option(0, help="2-D: which unknown to predict (0 = the first)."),
    animate: bool = typer.Option(False, help="2-D: also write a .gif of all frames."),
) -> None:
    """Predict a PDE written as text with the pretrained model: u(t, x) on [-1, 1] (periodic) or,
    with y in the equation or --domain/--bc, u(t, x, y) on a 2-D domain (the PDEformer-2 checkpoint)."""
    import re
    import time

    import numpy as np

    # 2-D when asked for (--domain, --bc) or when the equation has y in it; an IC alone does not decide
    if domain is not None or bc or re.search(r"(\by\b|_[txy]*y)", equation) or ";" in equation:
        _predict2d(
            equation,
            ic or "",
            out,
            checkpoint,
            nt,
            nx if nx is not None else 64,
            reference,
            plot,
            domain or "periodic",
            bc,
            unknowns,
            target,
            animate,
        )
        return

    from foundry.pde.graph.parser import PDEParseError, parse_pde

    if ic is None:
        raise typer.BadParameter("a 1-D PDE needs its initial condition", param_hint="--ic")

    def points(text: str | None, default: np.ndarray, name: str, lo: float, hi: float) -> np.ndarray:
        if text is None:
            return default
        try:
            v = np.array([float(s) for s in text.split(",") if s.strip()])
        except ValueError as e:
            raise typer.BadParameter(f"--{name}: {e}") from e
        if v.size == 0 or v.min() < lo or v.max() > hi:
            raise typer.BadParameter(f"--{name}: need values in [{lo}, {hi}]")
        return v

    nt, nx = (nt if nt is not None else 101), (nx if nx is not None else 128)
    if nt < 1 or nx < 2:
        raise typer.BadParameter("--nt must be >= 1 and --nx >= 2")
    t = points(t_points, np.linspace(0, 1, nt), "t-points", 0.0, 1.0)
    x = points(x_points, np.linspace(-1, 1, nx, endpoint=False), "x-points", -1.0, 1.0)
    try:
        pde = parse_pde(equation, ic)
    except PDEParseError as e:
        raise typer.BadParameter(str(e)) from e
    from foundry.pde.graph.family import family_warnings

    for warning in family_warnings(pde):  # extrapolation is allowed, but the user hears which part
        typer.echo(f"warning: {warning}", err=True)

    from foundry.pde.inference import load_model
    from foundry.pde.inference import predict as run

    try:
        model, _ = load_model(checkpoint)
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e), param_hint="--checkpoint") from None
    try:
        start = time.perf_counter()
        u = run(model, pde, t, x)
        elapsed = time.perf_counter() - start
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    arrays = {"t": t, "x": x, "u": u}
    msg = f"predicted u[{len(t)}, {len(x)}] in {elapsed * 1e3:.0f} ms"
    if reference:
        from foundry.pde.data.symbolic_solver import UnsupportedPDE, solve_symbolic

        try:
            t_ref, x_ref, u_ref = solve_symbolic(pde, num_t=101)
        except UnsupportedPDE as e:
            raise typer.BadParameter(f"--reference: {e}") from e
        u_model = run(model, pde, t_ref, x_ref)
        rel = np.linalg.norm(u_model - u_ref) / (np.linalg.norm(u_ref) + 1e-6)
        arrays.update({"t_ref": t_ref, "x_ref": x_ref, "u_ref": u_ref, "u_model_on_ref": u_model})
        msg += f"; relative L2 vs the numerical solution on its 101 x {len(x_ref)} grid: {rel:.4f}"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    if plot:
        from foundry.pde.plot import plot_prediction

        plot_prediction(arrays, equation, out.with_suffix(".png"))
    typer.echo(f"{msg}; saved {out}" + (f" and {out.with_suffix('.png')}" if plot else ""))


def _predict2d(
    equation: str,
    ic: str,
    out: Path,
    checkpoint: Path | None,
    nt: int | None,
    nx: int,
    reference: bool,
    plot: bool,
    domain: str,
    bcs: list[str],
    unknowns: str,
    target: int,
    animate: bool,
) -> None:
    """`predict` for a 2-D PDE: arrays t, x, y, u[t, x, y], mask (and the reference) in the .npz."""
    import time

    import numpy as np

    from foundry.pde.graph.parser import PDEParseError, parse_pde2d
    from foundry.pde.inference import default_checkpoint2d, load_model, predict_grid

    try:
        model, _ = load_model(checkpoint if checkpoint is not None else default_checkpoint2d())
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e), param_hint="--checkpoint") from None
    if model.config.num_coords != 3:
        raise typer.BadParameter(
            f"the checkpoint is a {model.config.num_coords - 1}-D model; a 2-D PDE needs a 2-D checkpoint",
            param_hint="--checkpoint",
        )
    if (nt is not None and nt < 1) or nx < 2:
        raise typer.BadParameter("--nt must be >= 1 and --nx >= 2")
    try:
        pde = parse_pde2d(
            [e for e in equation.split(";") if e.strip()],
            [f for f in ic.split(";") if f.strip()],
            domain,
            bcs,
            unknowns,
            resolution=model.config.function_grid,
        )
        if not 0 <= target < len(pde.unknowns):
            raise PDEParseError(f"--target {target}: the PDE has {len(pde.unknowns)} unknown(s)")
    except PDEParseError as e:
        raise typer.BadParameter(str(e)) from e
    dom = pde.domain
    if pde.steady:  # u(x, y) alone: the model reads it at t = 0, as PDEformer-2's steady data
        if nt not in (None, 1):
            raise typer.BadParameter(f"--nt {nt}: the PDE has no time derivative (one frame, t = 0)")
        nt = 1
    nt = nt if nt is not None else 21
    t = np.linspace(0, 1, nt) if nt > 1 else np.zeros(1)
    axis = np.linspace(0, 1, nx, endpoint=not all(dom.periodic))
    start = time.perf_counter()
    u = predict_grid(model, pde, [t, axis, axis], target=target)
    elapsed = time.perf_counter() - start
    xx, yy = np.meshgrid(axis, axis, indexing="ij")
    pts = np.stack([xx.ravel(), yy.ravel()], -1)
    mask = (dom.sdf(pts) <= 1e-12).reshape(nx, nx) if dom.kind in ("disk", "sdf") else np.ones((nx, nx), bool)
    arrays = {"t": t, "x": axis, "y": axis, "u": u, "mask": mask}
    name = pde.unknowns[target].value
    msg = f"predicted {name}[{nt}, {nx}, {nx}] in {elapsed * 1e3:.0f} ms"
    if reference:
        from foundry.pde.data.reference2d import solve_reference2d
        from foundry.pde.data.symbolic_solver import UnsupportedPDE

        try:
            ref = solve_reference2d(pde, num_t=nt, target=target)
        except UnsupportedPDE as e:
            raise typer.BadParameter(f"--reference: {e}") from e
        on_ref = predict_grid(model, pde, [ref["t"], ref["x"], ref["y"]], target=target)
        inside = ref["mask"][None]
        rel = np.linalg.norm((on_ref - ref["u"]) * inside) / (np.linalg.norm(ref["u"] * inside) + 1e-6)
        # the figure and arrays compare on the reference grid
        arrays = {
            "t": ref["t"],
            "x": ref["x"],
            "y": ref["y"],
            "u": on_ref,
            "mask": ref["mask"],
            "u_ref": ref["u"],
            "u_pred": u,
            "x_pred": axis,
        }
        g = len(ref["x"])
        msg += f"; relative L2 vs the numerical solution on its {nt} x {g} x {g} grid (inside): {rel:.4f}"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    written = [str(out)]
    if plot:
        from foundry.pde.plot import plot_prediction2d

        gif = out.with_suffix(".gif") if animate else None
        plot_prediction2d(
            arrays,
            f"{equation}   [{domain}{'; ' + '; '.join(bcs) if bcs else ''}]",
            out.with_suffix(".png"),
            gif,
        )
        written += [str(out.with_suffix(".png"))] + ([str(gif)] if gif else [])
    typer.echo(f"{msg}; saved {', '.join(written)}")


@app.command()
def invert(
    equation: str | None = typer.Argument(
        None, help='PDE text with unknown coefficients named, e.g. "u_t + a*u_x - b*u_xx = 0".'
    ),
    unknowns: str | None = typer.Option(None, help="Comma-separated names of the unknowns, e.g. a,b."),
    obs: Path | None = typer.Option(None, help="Observations .npz: t, x, u_obs, ic per IC (+ truth)."),
    demo: bool = typer.Option(False, help="Generate a sinus0 problem with the solver and invert it."),
    noise: float = typer.Option(0.01, help="--demo: uniform noise level relative to each solution's max."),
    num_ics: int = typer.Option(40, help="--demo: initial conditions observed."),
    method: str = typer.Option("both", help="pso, gradient or both."),
    lower: float = typer.Option(-3.0, help="Lower bound of every unknown."),
    upper: float = typer.Option(3.0, help="Upper bound of every unknown."),
    pso_particles: int = typer.Option(64, help="PSO swarm size."),
    pso_generations: int = typer.Option(50, help="PSO generations."),
    gd_starts: int = typer.Option(4, help="Gradient descent: random starts (one batch)."),
    gd_steps: int = typer.Option(150, help="Gradient descent: Adam steps."),
    lr: float = typer.Option(0.05, help="Gradient descent: Adam learning rate."),
    seed: int = typer.Option(0, help="Seed of the demo problem and the optimisers."),
    checkpoint: Path | None = typer.Option(None, help="Checkpoint; default: the shipped XS model."),
) -> None:
    """Recover scalar PDE coefficients from scattered observations through the model (PSO / gradient)."""
    import numpy as np

    from foundry.pde.checkpoint import CheckpointError
    from foundry.pde.graph.parser import PDEParseError
    from foundry.pde.inference import load_model
    from foundry.pde.inverse.invert import InvertSettings, invert_demo, invert_file

    if demo == (obs is not None):
        raise typer.BadParameter("give either --obs (with EQUATION and --unknowns) or --demo")
    if demo and (noise < 0 or num_ics < 1):
        raise typer.BadParameter("--noise must be >= 0 and --num-ics >= 1")
    try:
        settings = InvertSettings(
            method, lower, upper, pso_particles, pso_generations, gd_starts, gd_steps, lr, seed
        )
        model, _ = load_model(checkpoint)
        if demo:
            equation, names, results, truth, setup = invert_demo(model, settings, noise, num_ics, seed)
        else:
            if equation is None or not unknowns:
                raise ValueError("--obs needs the EQUATION argument and --unknowns")
            names = [n.strip() for n in unknowns.split(",") if n.strip()]
            results, truth, setup = invert_file(model, equation, names, obs, settings)
    except (FileNotFoundError, CheckpointError) as e:
        raise typer.BadParameter(str(e), param_hint="--checkpoint") from None
    except (ValueError, PDEParseError) as e:
        raise typer.BadParameter(str(e)) from e
    typer.echo(f"equation: {equation}\nunknowns: {', '.join(names)}; setup {setup:.1f} s")
    if truth is not None:
        typer.echo(f"{'true':>10}: " + " ".join(f"{v:9.4f}" for v in truth))
    for r in results:
        line = f"{r.method:>10}: " + " ".join(f"{v:9.4f}" for v in r.values)
        if truth is not None:
            line += f"  max abs error {np.abs(r.values - truth).max():.4f}"
        typer.echo(f"{line}  misfit {r.misfit:.4f}  {r.seconds:.1f} s  ({r.num_model_passes} model passes)")


@app.command("benchmark-data")
def benchmark_data(
    equation: str = typer.Option(..., help="burgers, advection or reaction_diffusion."),
    out: Path = typer.Option(..., help="HDF5 file to write (must not exist)."),
    num_samples: int = typer.Option(1000, help="Samples wanted."),
    nu: float | None = typer.Option(None, help="PDEBench viscosity/diffusivity [burgers 0.01, reaction 1]."),
    beta: float | None = typer.Option(None, help="PDEBench advection speed [0.1]."),
    rho: float | None = typer.Option(None, help="PDEBench reaction rate [1]."),
    seed: int = typer.Option(0, help="Seed of the initial conditions (use another for a test set)."),
) -> None:
    """Regenerate a PDEBench-like set (Burgers, Advection, Reaction-diffusion) in PDEformer's domain."""
    from foundry.pde.data.pdebench import generate_benchmark, spec_from_options

    try:
        spec = spec_from_options(equation.replace("-", "_"), nu, beta, rho)
        n = generate_benchmark(spec, out, num_samples=num_samples, seed=seed)
    except (ValueError, FileExistsError) as e:
        raise typer.BadParameter(str(e)) from e
    typer.echo(f"{out}: {n} samples of {spec.text()} ({spec.solver_description()})")
