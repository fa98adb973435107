"""The "sinus J" family: sinus0 plus J sin/cos terms, a family the pretrained model never saw.

u_t + f0(u) + s(x) + (f1(u) - kappa(x) u_x)_x = 0 on (t, x) in [0, 1] x [-1, 1), periodic, with

    f_i(u) = c_i1 u + c_i2 u^2 + c_i3 u^3 + sum_{j in J_i} c_j0 h_j(c_j1 u + c_j2 u^2),  h_j in {sin, cos}.

The polynomial part, s, kappa and the initial condition are drawn exactly as in sinus0
(`foundry.pde.data.sinus.sample_params`, same generator, then the trig draws). Following the
official ``data_generation/custom_sinus.py`` (class ``SinusoidalTermFi``), the J terms are split
between f0 and f1 with J0 uniform in {0, ..., J}; c_j0, c_j1, c_j2 ~ U[-r, r]; with probability 1/3
each the argument keeps both c_j1 u and c_j2 u^2, drops the u term or drops the u^2 term; h is sin
or cos with equal odds. We use J = 2 (the reference calls this family "sinus2"): every member has
two sin/cos nodes, node types absent from the sinus0 pretraining data.

Solved by `solve_periodic` with the trig terms as extra explicit terms (``extra=``); the 2x padded
grid no longer dealiases them exactly (tests compare with the symbolic solver, dt/10 and a 2x grid).
Rejected as in sinus0 (non-finite, |u| > 10, checkerboard) and, in addition, when the solution is
under-resolved on the grid (`under_resolved`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from foundry.pde.data.generate import PARAM_KEYS, GenerateConfig, generate, grid
from foundry.pde.data.sinus import COEF_RANGE, SinusParams, params_to_pde, sample_params
from foundry.pde.data.spectral_solver import checkerboard, solve_periodic
from foundry.pde.graph.dag import GRAPH_KEYS, build_graph
from foundry.pde.graph.symbolic import PDE, Expr

NUM_TRIG = 2
FAMILY = f"sinus{NUM_TRIG}"
TRIG_KEYS = ("trig_coef", "trig_is_sin", "trig_in_flux")


@dataclass
class TrigParams:
    """One member: a sinus0 member plus J sin/cos terms.

    Attributes
    ----------
    base : the sinus0 part (periodic)
    trig_coef : (J, 3) c_j0, c_j1, c_j2 of c_j0 * h_j(c_j1 u + c_j2 u^2)
    trig_is_sin : (J,) bool, h_j = sin (else cos)
    trig_in_flux : (J,) bool, the term belongs to f1 (inside the x-derivative), else to f0
    """

    base: SinusParams
    trig_coef: np.ndarray
    trig_is_sin: np.ndarray
    trig_in_flux: np.ndarray


def sample_trig_params(
    rng: np.random.Generator, x: np.ndarray, num_trig: int = NUM_TRIG, coef_range: float = COEF_RANGE
) -> TrigParams:
    """Draw one periodic member (``x``: the periodic grid)."""
    if num_trig < 0:
        raise ValueError(f"num_trig must be >= 0, got {num_trig}")
    base = sample_params(rng, x, True, coef_range)
    num_f0 = int(rng.integers(0, num_trig + 1))
    coef = rng.uniform(-coef_range, coef_range, size=(num_trig, 3))
    drop = rng.integers(0, 3, size=num_trig)  # 0: keep both, 1: no u term, 2: no u^2 term
    coef[drop == 1, 1] = 0.0
    coef[drop == 2, 2] = 0.0
    is_sin = rng.random(num_trig) < 0.5
    return TrigParams(base, coef, is_sin, np.arange(num_trig) >= num_f0)


def trig_terms(
    coef: np.ndarray, is_sin: np.ndarray, in_flux: np.ndarray
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The batch's trig terms as `solve_periodic`'s ``extra``: u (B, m) -> (f0 part, f1 part).

    ``coef`` (B, J, 3), ``is_sin`` and ``in_flux`` (B, J), as stacked from `TrigParams`.
    """
    a1, a2 = coef[:, :, 1, None], coef[:, :, 2, None]  # (B, J, 1)
    phase = np.where(is_sin, 0.0, np.pi / 2)[:, :, None]  # cos(a) = sin(a + pi/2): one sin per point
    w0 = np.where(in_flux, 0.0, coef[:, :, 0])[:, None, :]  # (B, 1, J) weights into f0 and f1
    w1 = np.where(in_flux, coef[:, :, 0], 0.0)[:, None, :]

    def terms(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = np.sin(a1 * u[:, None] + a2 * (u * u)[:, None] + phase)  # (B, J, m)
        return (w0 @ h)[:, 0], (w1 @ h)[:, 0]

    return terms


def _trig_term(pde: PDE, u: Expr, c: np.ndarray, is_sin: bool) -> Expr:
    inner = [float(a) * v for a, v in zip(c[1:], (u, u**2), strict=True) if a != 0.0]
    arg = sum(inner[1:], inner[0])
    return float(c[0]) * (pde.sin(arg) if is_sin else pde.cos(arg))


def trig_params_to_pde(p: TrigParams, x: np.ndarray) -> PDE:
    """The symbolic PDE of one member, written as `sinus.params_to_pde` writes sinus0 (trig terms
    after the polynomial ones of the same f_i)."""

    def trig(pde: PDE, u: Expr) -> list[tuple[bool, Expr]]:
        return [
            (bool(f), _trig_term(pde, u, c, bool(s)))
            for c, s, f in zip(p.trig_coef, p.trig_is_sin, p.trig_in_flux, strict=True)
        ]

    return params_to_pde(p.base, x, extra=trig)


def under_resolved(u: np.ndarray, top: float = 0.125, tol: float = 1e-4) -> np.ndarray:
    """Flag solutions the grid does not resolve: at some frame, more than ``tol`` of the spectral
    energy lies in the top ``top`` fraction of the resolved modes.

    The sin/cos of u and u^2 make steep fronts; without this rule 10 of 120 accepted members
    (128 points) differed from the same PDE on 256 points by 2% to 120%. With it none did, at the
    cost of 13 of the 110 good ones (tests/pde/test_sinus_trig.py checks accepted members against
    a 2x grid).

    Parameters
    ----------
    u : (B, T, n) solutions on the periodic grid.

    Returns
    -------
    (B,) bool, True where the sample should be rejected.
    """
    power = np.abs(np.fft.rfft(u, axis=-1)) ** 2  # (B, T, n//2 + 1)
    cut = int(round((1 - top) * (power.shape[-1] - 1)))
    ratio = power[..., cut:].sum(-1) / (power.sum(-1) + 1e-30)
    return ratio.max(axis=1) > tol


def solve_trig_chunk(cfg: GenerateConfig, chunk: int) -> dict[str, np.ndarray]:
    """`generate.solve_chunk` for this family: draw chunk ``chunk`` from rng([seed, chunk]), solve,
    filter, and return the accepted samples with their parameters and graph arrays."""
    if cfg.boundary != "periodic":
        raise ValueError(f"the {FAMILY} family is periodic only, got boundary={cfg.boundary!r}")
    rng = np.random.default_rng([cfg.seed, chunk])
    _, x = grid(cfg)
    params = [sample_trig_params(rng, x, NUM_TRIG, cfg.coef_range) for _ in range(cfg.chunk_size)]

    def stack(name: str) -> np.ndarray:
        return np.stack([np.asarray(getattr(p.base, name)) for p in params])

    trig = {key: np.stack([getattr(p, key) for p in params]) for key in TRIG_KEYS}
    u, ok = solve_periodic(
        stack("u0"),
        stack("c0"),
        stack("c1"),
        stack("source"),
        stack("kappa"),
        num_t=cfg.num_t,
        dt=cfg.dt,
        extra=trig_terms(*(trig[key] for key in TRIG_KEYS)),
    )
    ok &= ~checkerboard(u) & ~under_resolved(u)
    keep = np.flatnonzero(ok)
    out: dict[str, np.ndarray] = {"u": u[keep].astype(np.float32), "u0": stack("u0")[keep]}
    out.update({key: stack(key)[keep] for key in PARAM_KEYS})
    out.update({key: arr[keep] for key, arr in trig.items()})
    graphs = [build_graph(trig_params_to_pde(params[i], x), cfg.num_mod) for i in keep]
    empty = graphs[0] if graphs else build_graph(trig_params_to_pde(params[0], x), cfg.num_mod)
    for key in GRAPH_KEYS:
        out[key] = (
            np.stack([getattr(g, key) for g in graphs])
            if graphs
            else np.zeros((0, *np.shape(getattr(empty, key))))
        )
    out["num_candidates"] = np.array(cfg.chunk_size)
    return out


def generate_trig(cfg: GenerateConfig, path, num_workers: int = 1, progress: bool = True) -> int:
    """`generate.generate` for this family (same format; ``attrs["family"] = "sinus2-periodic"``)."""
    if cfg.boundary != "periodic":
        raise ValueError(f"the {FAMILY} family is periodic only, got boundary={cfg.boundary!r}")
    return generate(cfg, path, num_workers, progress, family=FAMILY, solve=solve_trig_chunk)


def read_params(arrays: dict[str, np.ndarray], i: int) -> TrigParams:
    """Sample ``i``'s parameters from a file's arrays (``{key: dataset[:]}``)."""
    base = SinusParams(
        arrays["c0"][i],
        arrays["c1"][i],
        arrays["source"][i],
        int(arrays["source_kind"][i]),
        arrays["kappa"][i],
        bool(arrays["kappa_is_field"][i]),
        arrays["u0"][i],
        bool(arrays["flux_form"][i]),
    )
    return TrigParams(base, *(np.asarray(arrays[key][i]) for key in TRIG_KEYS))
