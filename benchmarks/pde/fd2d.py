"""Accuracy and cost of the finite-difference 2D solvers (`foundry.pde.data.fd2d`) on the square and the disk.

1. Closed forms vs n (a = 0.05, dt = 1e-3, t in [0, 1]): the Dirichlet mode sin(pi x) sin(pi y), the Robin
   mode (∂_n u + u = 0 on x = 0, 1, Neumann on y) of `tests/pde/test_fd2d.py`, both relative L2 at t = 1;
   the disk's first Dirichlet mode J0(j01 rho / R), R = 0.4: relative error of its decay rate (from the
   L2 norms at t = 0.5 and 1) and relative L2 of the field at t = 1 on the nodes inside the disk.
2. Random nonlinear members vs n against n = 129 (dt = 1.25e-3, 101 frames on [0, 1], compared on the
   coarse nodes; on the disk, on the nodes inside at both resolutions). Coefficients from
   `families2d.sample_dcr` (its fields drawn periodic on 128^2 and closed to the 129-node grid, so every
   n sees the same function). Boundary data, this benchmark's choice: on the square each edge Dirichlet
   (value U[-0.5, 0.5]) or Robin (alpha U[0, 1], beta U[-0.5, 0.5]) with equal odds; disks R U[0.3, 0.5],
   value U[-0.5, 0.5]. Medians and maxima over the members bounded at every n, as in solvers2d.py.
3. Wave (c2 = 1, leapfrog at dt = 0.32 h, t in [0, 1]): the Dirichlet standing mode
   sin(pi x) sin(pi y) cos(sqrt(2) pi t), relative L2 at t = 1; a Gaussian pulse (width 0.06) moving in +x
   with Mur edges (u_t + ∂_n u = 0) on x = 0, 1 and Neumann on y: max |u| at t = 1, after it has left
   (0 in the continuum; about 1 with Neumann everywhere).
4. Seconds per sample for B = 8 random members, full t in [0, 1], dt = 2.5e-3 (DCR); wave: the random
   members' u0 with v0 = 0, c2 U[1e-2, 4], Mur edges with gamma = 1 / c, dt = 0.32 h / 2. The disk with
   Robin conditions (alpha U[0, 1], beta U[-0.5, 0.5]) and the wave on the disk with Mur (gamma = 1 / c)
   likewise.
5. Disk with Robin conditions (cut-cell finite volumes), n in {33, 65, 129}: the heat modes
   J0(lam rho) exp(-a lam^2 t) (a = 0.05, R = 0.4, dt = 1e-3) for ∂_n u + u = 0 (-lam J1(lam R) + J0(lam R)
   = 0) and for Neumann (lam R = j11), relative L2 at t = 1 on the nodes inside; the wave's standing
   mode J0(lam rho) cos(lam t) (c2 = 1, ∂_n u + u = 0, dt = 0.32 h), relative L2 at t = 1; a Gaussian
   pulse exp(-(rho / 0.1)^2) at rest at the centre with Mur u_t + ∂_n u = 0 on the circle against the
   same solver at n = 257: relative L2 over the 11 frames t = 0.1 .. 1 on the nodes inside, and max |u|
   inside at t = 1 (with Dirichlet instead, for comparison). The random members of 2 also with Robin
   disks (section "disk_robin").

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/pde/fd2d.py [--json] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time

import torch
from scipy.optimize import brentq
from scipy.special import j0, j1, jn_zeros

from foundry.pde.data.families2d import sample_dcr
from foundry.pde.data.fd2d import (
    Disk,
    SquareBC,
    node_grid,
    solve_dcr_disk,
    solve_dcr_square,
    solve_wave_disk,
    solve_wave_square,
)

ZERO = torch.zeros(1, 3, dtype=torch.float64)
NS = (17, 33, 65, 129)
DISK_NS, DISK_REF = (33, 65, 129), 257  # section 5 and its refined pulse solution


def vec(*v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def closed_forms() -> list[dict]:
    a = 0.05
    k = brentq(lambda s: (s * s - 1) * math.sin(s) - 2 * s * math.cos(s), 1.0, math.pi)
    robin = SquareBC(
        torch.tensor([[False] * 4]), vec(1, 1, 0, 0)[None], torch.zeros(1, 4, dtype=torch.float64)
    )
    radius, j01 = 0.4, jn_zeros(0, 1)[0]
    rate = a * j01**2 / radius**2
    rows = []
    for n in NS:
        x, y = node_grid(n)
        u0 = torch.sin(math.pi * x) * torch.sin(math.pi * y)
        u, _ = solve_dcr_square(u0[None], SquareBC.uniform(1, "dirichlet"), vec(a), ZERO, ZERO, ZERO, num_t=3)
        dirichlet = rel(u[0, -1], math.exp(-2 * math.pi**2 * a) * u0)
        u0 = (torch.cos(k * x) + torch.sin(k * x) / k) * torch.cos(math.pi * y)
        u, _ = solve_dcr_square(u0[None], robin, vec(a), ZERO, ZERO, ZERO, num_t=3)
        robin_err = rel(u[0, -1], math.exp(-a * (k * k + math.pi**2)) * u0)
        rho = torch.sqrt((x - 0.5) ** 2 + (y - 0.5) ** 2)
        u0 = torch.where(rho < radius, torch.from_numpy(j0(j01 * rho.numpy() / radius)), 0.0)
        u, _ = solve_dcr_disk(u0[None], Disk(vec(radius), vec(0.0)), vec(a), ZERO, ZERO, ZERO, num_t=3)
        measured = math.log(u[0, 1].norm() / u[0, 2].norm()) / 0.5
        inside = rho < radius
        field = rel(u[0, -1][inside], math.exp(-rate) * u0[inside])
        rows.append(
            {
                "n": n,
                "dirichlet": dirichlet,
                "robin": robin_err,
                "disk_rate": abs(measured / rate - 1),
                "disk_field": field,
            }
        )
    return rows


def wave_dt(n: int, factor: float = 0.32) -> float:
    """The largest dt <= factor h that divides the save interval 1/100."""
    return 0.01 / math.ceil(0.01 / (factor / (n - 1)))


def wave_closed_forms() -> list[dict]:
    rows = []
    zero = torch.zeros(1, 4, dtype=torch.float64)
    mur = SquareBC(torch.zeros(1, 4, dtype=torch.bool), zero, zero, vec(1, 1, 0, 0)[None])
    for n in NS:
        x, y = node_grid(n)
        u0 = torch.sin(math.pi * x) * torch.sin(math.pi * y)
        dt = wave_dt(n)
        u, _ = solve_wave_square(u0[None], 0 * u0[None], SquareBC.uniform(1, "dirichlet"), vec(1.0), dt=dt)
        standing = rel(u[0, -1], math.cos(math.sqrt(2) * math.pi) * u0)
        f = torch.exp(-(((x - 0.5) / 0.06) ** 2))
        u, _ = solve_wave_square(f[None], (2 * (x - 0.5) / 0.06**2 * f)[None], mur, vec(1.0), dt=dt)
        rows.append({"n": n, "dt": dt, "standing": standing, "mur_residual": u[0, -1].abs().max().item()})
    return rows


def bessel_mode(radius: float, alpha: float, n: int) -> tuple[float, torch.Tensor, torch.Tensor]:
    """lam: first non-constant root of -lam J1(lam R) + alpha J0(lam R) = 0; rho, J0(lam rho) on the grid."""
    lo, hi = (1e-6, jn_zeros(0, 1)[0] / radius) if alpha > 0 else (3.0 / radius, 5.0 / radius)
    lam = brentq(lambda s: -s * j1(s * radius) + alpha * j0(s * radius), lo, hi)
    x, y = node_grid(n)
    rho = torch.sqrt((x - 0.5) ** 2 + (y - 0.5) ** 2)
    return lam, rho, torch.from_numpy(j0(lam * rho.numpy()))


def disk_robin_rows() -> list[dict]:
    radius, a = 0.4, 0.05
    zero2 = torch.zeros(2, 3, dtype=torch.float64)
    disk = Disk(vec(radius, radius), alpha=vec(1.0, 0.0), beta=vec(0.0, 0.0))
    rows = []

    def pulse_run(n: int, cond: Disk) -> torch.Tensor:
        x, y = node_grid(n)
        u0 = torch.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.1**2)[None]
        return solve_wave_disk(u0, 0 * u0, cond, vec(1.0), num_t=11, dt=wave_dt(n))[0][0]

    mur = Disk.from_mur(vec(radius), vec(0.0), vec(1.0), vec(0.0))
    ref = pulse_run(DISK_REF, mur)
    for n in DISK_NS:
        row: dict = {"n": n}
        (lam1, rho, m1), (lam0, _, m0) = bessel_mode(radius, 1.0, n), bessel_mode(radius, 0.0, n)
        inside = rho < radius
        start = time.perf_counter()
        u, _ = solve_dcr_disk(torch.stack([m1, m0]), disk, vec(a, a), zero2, zero2, zero2, num_t=3)
        row["heat_s"] = (time.perf_counter() - start) / 2
        row["heat_robin"] = rel(u[0, -1][inside], math.exp(-a * lam1**2) * m1[inside])
        row["heat_neumann"] = rel(u[1, -1][inside], math.exp(-a * lam0**2) * m0[inside])
        dt = wave_dt(n)
        start = time.perf_counter()
        u, _ = solve_wave_disk(
            m1[None], 0 * m1[None], disk.select(torch.tensor([0])), vec(1.0), num_t=3, dt=dt
        )
        row["wave_s"] = time.perf_counter() - start
        row["wave_dt"] = dt
        row["wave_robin"] = rel(u[0, -1][inside], math.cos(lam1) * m1[inside])
        s = (DISK_REF - 1) // (n - 1)
        u = pulse_run(n, mur)
        r = ref[:, ::s, ::s]
        row["mur_pulse"] = rel(u[1:, inside], r[1:, inside])
        row["mur_max_t1"] = u[-1][inside].abs().max().item()
        row["dirichlet_max_t1"] = pulse_run(n, Disk(vec(radius), vec(0.0)))[-1][inside].abs().max().item()
        rows.append(row)
    return rows


def close_periodic(f: torch.Tensor) -> torch.Tensor:
    """[B, m, m] periodic grid values -> [B, m + 1, m + 1] on the node grid (x = 1 repeats x = 0)."""
    f = torch.cat([f, f[:, :1]], dim=1)
    return torch.cat([f, f[:, :, :1]], dim=2)


def random_members(batch: int, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    p = sample_dcr(gen, batch, 128)

    def uni(shape: tuple[int, ...], lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=torch.float64)

    bc = SquareBC(
        torch.rand(batch, 4, generator=gen) < 0.5, uni((batch, 4), 0, 1), uni((batch, 4), -0.5, 0.5)
    )
    disk = Disk(uni((batch,), 0.3, 0.5), uni((batch,), -0.5, 0.5))
    robin = Disk(disk.radius, alpha=uni((batch,), 0, 1), beta=uni((batch,), -0.5, 0.5))
    return {
        "disk_robin": robin,
        "u0": close_periodic(p.u0),
        "source": close_periodic(p.source),
        "coefs": (p.a, p.c0, p.c1, p.c2),
        "bc": bc,
        "disk": disk,
    }


def run(m: dict, domain: str, n: int, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
    s = 128 // (n - 1)
    u0, source = m["u0"][:, ::s, ::s], m["source"][:, ::s, ::s]
    if domain == "square":
        return solve_dcr_square(u0, m["bc"], *m["coefs"], source, dt=dt)
    return solve_dcr_disk(u0, m[domain], *m["coefs"], source, dt=dt)


def error_vs_n(batch: int, seed: int) -> dict:
    m = random_members(batch, seed)
    out = {}
    for domain in ("square", "disk", "disk_robin"):
        ref, ok_all = run(m, domain, 129, 1.25e-3)
        errs = {}
        for n in NS[:-1]:
            u, ok = run(m, domain, n, 1.25e-3)
            s = 128 // (n - 1)
            r = ref[..., ::s, ::s]
            if domain != "square":  # nodes inside the disk at both resolutions (the staircases differ)
                keep = (m[domain].mask(n) * m[domain].mask(129)[:, ::s, ::s])[:, None]
                u, r = u * keep, r * keep
            errs[n] = (u - r).flatten(1).norm(dim=1) / r.flatten(1).norm(dim=1)
            ok_all = ok_all & ok
        rows = []
        for n, e in errs.items():
            kept = e[ok_all].tolist()
            rows.append(
                {
                    "n": n,
                    "median": statistics.median(kept) if kept else math.nan,
                    "max": max(kept) if kept else math.nan,
                    "samples": len(kept),
                }
            )
        out[domain] = rows
    return out


def timing(seed: int) -> list[dict]:
    m = random_members(8, seed)
    rows = []
    for n in (33, 65, 129):
        row: dict = {"n": n, "batch": 8}
        for domain in ("square", "disk", "disk_robin"):
            start = time.perf_counter()
            _, ok = run(m, domain, n, 2.5e-3)
            row[f"{domain}_s"] = (time.perf_counter() - start) / 8
            row[f"{domain}_ok"] = float(ok.double().mean())
        s = 128 // (n - 1)
        c2 = 1e-2 + (4 - 1e-2) * torch.rand(
            8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
        )
        zero = torch.zeros(8, 4, dtype=torch.float64)
        mur = SquareBC(torch.zeros(8, 4, dtype=torch.bool), zero, zero, (1 / c2.sqrt())[:, None].expand(8, 4))
        u0 = m["u0"][:, ::s, ::s]
        start = time.perf_counter()
        _, ok = solve_wave_square(u0, 0 * u0, mur, c2, dt=wave_dt(n, 0.16))
        row["wave_s"] = (time.perf_counter() - start) / 8
        row["wave_ok"] = float(ok.double().mean())
        mur_disk = Disk.from_mur(m["disk"].radius, torch.zeros(8, dtype=torch.float64), c2.sqrt(), 0 * c2)
        start = time.perf_counter()
        _, ok = solve_wave_disk(u0, 0 * u0, mur_disk, c2, dt=wave_dt(n, 0.16))
        row["wave_disk_s"] = (time.perf_counter() - start) / 8
        row["wave_disk_ok"] = float(ok.double().mean())
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--batch", type=int, default=8, help="random members in the error study")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = {
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "closed_forms": closed_forms(),
        "error_vs_n": error_vs_n(args.batch, args.seed),
        "wave_closed_forms": wave_closed_forms(),
        "seconds_per_sample": timing(args.seed + 1),
        "disk_robin": disk_robin_rows(),
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"torch {result['torch']}, {result['threads']} thread(s)")
    print("\n| n | square Dirichlet mode | square Robin mode | disk J0 decay rate | disk J0 field |")
    print("|---|---|---|---|---|")
    for r in result["closed_forms"]:
        cells = [r["n"]] + [f"{r[k]:.2e}" for k in ("dirichlet", "robin", "disk_rate", "disk_field")]
        print("| " + " | ".join(map(str, cells)) + " |")
    for domain, rows in result["error_vs_n"].items():
        print(f"\n| {domain}: n (vs 129, dt 1.25e-3) | median rel L2 | max rel L2 | samples |")
        print("|---|---|---|---|")
        for r in rows:
            print(f"| {r['n']} | {r['median']:.2e} | {r['max']:.2e} | {r['samples']} |")
    print("\n| n | wave dt | Dirichlet standing mode rel L2 | Mur pulse max abs u at t = 1 |")
    print("|---|---|---|---|")
    for r in result["wave_closed_forms"]:
        print(f"| {r['n']} | {r['dt']:.3e} | {r['standing']:.2e} | {r['mur_residual']:.2e} |")
    print(
        "\n| n | batch | square s/sample | bounded | disk s/sample | bounded | disk Robin s/sample | bounded"
        " | wave s/sample | bounded | wave disk Mur s/sample | bounded |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in result["seconds_per_sample"]:
        cells = [r["n"], r["batch"]]
        for k in ("square", "disk", "disk_robin", "wave", "wave_disk"):
            cells += [f"{r[k + '_s']:.3f}", f"{r[k + '_ok']:.2f}"]
        print("| " + " | ".join(map(str, cells)) + " |")
    print(
        "\n| n | heat Robin J0 mode | heat Neumann J0 mode | heat s/mode | wave dt | wave Robin J0 mode"
        f" | wave s | Mur pulse vs n={DISK_REF} | Mur max abs u, t=1 | Dirichlet max abs u, t=1 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in result["disk_robin"]:
        cells = [r["n"], f"{r['heat_robin']:.2e}", f"{r['heat_neumann']:.2e}", f"{r['heat_s']:.2f}"]
        cells += [
            f"{r['wave_dt']:.3e}",
            f"{r['wave_robin']:.2e}",
            f"{r['wave_s']:.2f}",
            f"{r['mur_pulse']:.2e}",
        ]
        cells += [f"{r['mur_max_t1']:.2e}", f"{r['dirichlet_max_t1']:.2e}"]
        print("| " + " | ".join(map(str, cells)) + " |")


if __name__ == "__main__":
    main()
