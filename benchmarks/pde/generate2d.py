"""Cost and acceptance of `foundry.pde.data.generate2d` per family (CPU, one thread).

For each family: ``--chunks`` chunks of ``--chunk-size`` candidate members are drawn, solved on the
2x grid and turned into graphs by `solve_chunk` (the code path of `generate2d` minus the HDF5
write); reported are seconds per candidate and per kept row, the share of the time spent in the
solver, the acceptance (kept members / candidates) and the dropped counts. Then one file of
``--rows`` rows is written to measure bytes per row.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/pde/generate2d.py [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from foundry.pde.data.generate2d import (
    FAMILIES,
    Generate2DConfig,
    draw_chunk,
    generate2d,
    solve_chunk,
    solve_draw,
)


def run_family(family: str, args: argparse.Namespace) -> dict:
    cfg = Generate2DConfig(
        family=family,
        resolution=args.resolution,
        num_t=args.num_t,
        chunk_size=args.chunk_size,
        seed=args.seed,
    )
    solve_s = total_s = 0.0
    kept_rows = candidates = unbounded = too_large = 0
    for chunk in range(args.chunks):
        t0 = time.perf_counter()
        solve_draw(cfg, draw_chunk(cfg, chunk))  # the solver alone (draw included)
        t1 = time.perf_counter()
        res = solve_chunk(cfg, chunk)  # draw + solve + graphs
        t2 = time.perf_counter()
        solve_s += t1 - t0
        total_s += t2 - t1
        kept_rows += len(res["u"])
        candidates += int(res["num_candidates"])
        unbounded += int(res["num_unbounded"])
        too_large += int(res["num_too_large"])
    kept = kept_rows // cfg.num_rows
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.h5"
        file_cfg = cfg.model_copy(update={"num_samples": args.rows})
        generate2d(file_cfg, path, progress=False)
        mb_per_row = path.stat().st_size / 1e6 / args.rows
    return {
        "family": family,
        "candidates": candidates,
        "kept_members": kept,
        "rows": kept_rows,
        "acceptance": kept / candidates,
        "unbounded": unbounded,
        "too_large": too_large,
        "s_per_candidate": total_s / candidates,
        "s_per_row": total_s / max(kept_rows, 1),
        "solver_share": solve_s / total_s,
        "mb_per_row": mb_per_row,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="*", default=list(FAMILIES))
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--num-t", type=int, default=21)
    ap.add_argument("--chunk-size", type=int, default=16)
    ap.add_argument("--chunks", type=int, default=2)
    ap.add_argument("--rows", type=int, default=8, help="rows of the file written to measure its size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = [run_family(f, args) for f in args.families]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    head = "family candidates kept acceptance unbounded too_large s/candidate s/row solver_share MB/row"
    print("| " + " | ".join(head.split()) + " |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [r["family"], r["candidates"], r["kept_members"], f"{r['acceptance']:.2f}", r["unbounded"]]
        cells += [r["too_large"], f"{r['s_per_candidate']:.3f}", f"{r['s_per_row']:.3f}"]
        cells += [f"{r['solver_share']:.2f}", f"{r['mb_per_row']:.3f}"]
        print("| " + " | ".join(map(str, cells)) + " |")


if __name__ == "__main__":
    main()
