"""What `foundry pde invert` runs: load or generate observations, recover, report.

Observation file (.npz), one row per initial condition (n_ic of them):

- ``ic``    (n_ic, n)        u(0, x) on the n-point uniform periodic grid of [-1, 1)
- ``t``     (n_ic, n_t)      observation times in [0, 1]
- ``x``     (n_ic, n_x)      observation positions in [-1, 1]
- ``u_obs`` (n_ic, n_t, n_x) observed u at every (t_i[a], x_i[b])
- ``truth`` (K,), optional   true values of the unknowns, in the order given, to report errors
"""

from __future__ import annotations

import time
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from foundry.pde.data.sinus import params_to_pde
from foundry.pde.inverse.problems import Observations, describe, grid, make_problem, observe, set_scalars
from foundry.pde.inverse.pso import PSOConfig
from foundry.pde.inverse.scalar import ScalarInversion, ScalarResult, recover_gradient, recover_pso
from foundry.pde.inverse.text import text_template
from foundry.pde.models.pdeformer import PDEformer

OBS_KEYS = ("t", "x", "u_obs", "ic")
METHODS = ("pso", "gradient", "both")


@dataclass(frozen=True)
class InvertSettings:
    """Optimiser settings shared by the file and demo modes."""

    method: str = "both"
    lower: float = -3.0
    upper: float = 3.0
    pso_particles: int = 64
    pso_generations: int = 50
    gd_starts: int = 4
    gd_steps: int = 150
    lr: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not self.lower < self.upper:
            raise ValueError(f"--lower ({self.lower}) must be below --upper ({self.upper})")
        if self.pso_particles < 2 or self.pso_generations < 0:
            raise ValueError("--pso-particles must be >= 2 and --pso-generations >= 0")
        if self.gd_starts < 1 or self.gd_steps < 1 or self.lr <= 0:
            raise ValueError("--gd-starts and --gd-steps must be >= 1 and --lr > 0")


def load_observations(path: Path) -> tuple[Observations, np.ndarray | None]:
    """Read an observation .npz; ValueError naming the missing or malformed array."""
    if not path.exists():
        raise ValueError(f"--obs: {path} does not exist")
    try:
        z = np.load(path, allow_pickle=False)  # a pickled object array could run code: refused
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"--obs: {path} is not a readable .npz file ({e})") from e
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"--obs: {path} is a single .npy array, not an .npz file of {', '.join(OBS_KEYS)}")
    missing = [k for k in OBS_KEYS if k not in z]
    if missing:
        raise ValueError(f"--obs: {path} lacks array(s) {', '.join(missing)} (needs {', '.join(OBS_KEYS)})")
    try:
        arrays = {k: np.asarray(z[k], dtype=np.float64) for k in OBS_KEYS}
        truth = np.asarray(z["truth"], dtype=np.float64).reshape(-1) if "truth" in z else None
    except (ValueError, TypeError) as e:  # object arrays (refused unpickling), strings, ...
        raise ValueError(f"--obs: {path} holds non-numeric arrays ({e})") from e
    try:
        obs = Observations(arrays["ic"], arrays["t"], arrays["x"], arrays["u_obs"])
    except ValueError as e:
        raise ValueError(f"--obs: {e}") from e
    return obs, truth


def save_observations(path: Path, obs: Observations, truth: np.ndarray | None = None) -> None:
    """Write observations in the format `load_observations` reads."""
    extra = {} if truth is None else {"truth": truth}
    np.savez(path, t=obs.t, x=obs.x, u_obs=obs.u, ic=obs.ic, **extra)


def run(inv: ScalarInversion, settings: InvertSettings) -> list[ScalarResult]:
    """Run the chosen method(s) on one inversion."""
    out = []
    if settings.method in ("pso", "both"):
        cfg = PSOConfig(settings.pso_particles, settings.pso_generations, seed=settings.seed)
        out.append(recover_pso(inv, settings.lower, settings.upper, cfg))
    if settings.method in ("gradient", "both"):
        out.append(
            recover_gradient(
                inv,
                settings.lower,
                settings.upper,
                settings.gd_starts,
                settings.gd_steps,
                settings.lr,
                settings.seed,
            )
        )
    return out


def invert_file(
    model: PDEformer, equation: str, names: list[str], path: Path, settings: InvertSettings
) -> tuple[list[ScalarResult], np.ndarray | None, float]:
    """Recover ``names`` in ``equation`` from the observations in ``path`` -> results, truth, setup s."""
    start = time.perf_counter()
    obs, truth = load_observations(path)
    if truth is not None and truth.size != len(names):
        raise ValueError(f"--obs: 'truth' has {truth.size} values but {len(names)} unknowns were named")
    x = np.linspace(-1.0, 1.0, obs.ic.shape[1], endpoint=False)
    inv = ScalarInversion(model, text_template(equation, names, x), names, obs)
    setup = time.perf_counter() - start
    return run(inv, settings), truth, setup


def invert_demo(
    model: PDEformer, settings: InvertSettings, noise: float, num_ics: int, seed: int
) -> tuple[str, list[str], list[ScalarResult], np.ndarray, float]:
    """Generate a scalar problem (sinus0 member, our solver), observe it with noise, recover its scalars."""
    start = time.perf_counter()
    prob = make_problem(seed, "scalar", num_ics=num_ics)
    obs = observe(np.random.default_rng([seed, 1]), prob.u, prob.ics, noise)
    _, x = grid()
    base = replace(prob.params, u0=obs.ic[0])

    def build(theta: np.ndarray):
        return params_to_pde(set_scalars(base, prob.names, theta), x)

    inv = ScalarInversion(model, build, list(prob.names), obs)
    setup = time.perf_counter() - start
    return describe(prob.params, prob.names), list(prob.names), run(inv, settings), prob.truth, setup
