"""Train a PDEformer: ``train(cfg)`` is the whole loop.

Single process by default; launched with ``torchrun --nproc_per_node=K`` it runs DDP (NCCL on
GPUs, gloo on CPU), each rank drawing its own batches, rank 0 logging and checkpointing.

Checkpoints: ``last.pt`` (weights, optimizer, step: what a resume reads) and ``best.pt`` (the weights
with the lowest held-out relative L2 so far; without a test set, or before its first evaluation,
the latest weights, with ``rel_l2`` None). Both are written at every evaluation, at the end, and
when the run is interrupted (Ctrl-C), as PyTorch Lightning's ``last``/``best`` would be.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from foundry.pde.checkpoint import read_checkpoint, save_checkpoint
from foundry.pde.data.dataset import DeviceSampler, PDEDataset
from foundry.pde.losses.nrmse import normalized_rmse
from foundry.pde.models.pdeformer import PRESETS, PDEformer, PDEformerConfig, with_log_scalars
from foundry.pde.training.config import TrainConfig
from foundry.pde.training.evaluate import evaluate
from foundry.pde.training.schedule import warmup_cosine


def read_log(path: str | Path) -> list[dict]:
    """The records of a run's ``log.jsonl`` (training lines carry ``loss``, evaluations ``test_rel_l2``)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; a named device that is not there is a ValueError."""
    if name != "auto":
        try:
            device = torch.device(name)
        except RuntimeError as e:
            raise ValueError(str(e)) from None
        mps = getattr(torch.backends, "mps", None)
        if (device.type == "cuda" and not torch.cuda.is_available()) or (
            device.type == "mps" and not (mps is not None and mps.is_available())
        ):
            raise ValueError(f"{name!r} is not available on this machine (try auto or cpu)")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _init_distributed(device: torch.device) -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world


def lr_scale(global_batch: int, reference_batch: int, rule: str) -> float:
    """Learning-rate multiplier for a global batch: 1 ("none"), B/B_ref ("linear") or sqrt(B/B_ref)."""
    ratio = global_batch / reference_batch
    return {"none": 1.0, "linear": ratio, "sqrt": ratio**0.5}[rule]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during `train`, raised after ``last.pt`` and ``best.pt`` were saved at ``step``."""

    def __init__(self, step: int, out_dir: Path, saved: bool) -> None:
        super().__init__(f"interrupted at step {step}")
        self.step, self.out_dir, self.saved = step, out_dir, saved


def train(cfg: TrainConfig, on_step: Callable[[int, dict], None] | None = None) -> dict:
    """Run training; returns a summary (steps, best held-out relative L2 or None without a test set).

    ``on_step(step, metrics)`` is called on rank 0 after every optimizer step, with this step's
    ``loss`` and ``lr`` and, after an evaluation, ``test_rel_l2`` (a progress bar, say). A
    KeyboardInterrupt, from Ctrl-C or from ``on_step``, saves both checkpoints and is re-raised as
    `TrainingInterrupted`.
    """
    device = select_device(cfg.device)
    rank, world = _init_distributed(device)
    torch.manual_seed(cfg.seed)
    model_cfg = replace(PRESETS[cfg.model_size], log_scalars=cfg.log_scalars)
    if model_cfg.function_encoder == "cnn" and cfg.function_points is not None:
        raise ValueError(
            f"function_points: the {cfg.model_size} CNN function encoder reads whole grids; leave it unset"
        )
    model = PDEformer(model_cfg).to(device)
    if cfg.init_from is not None:  # finetuning: weights only; a resume below still takes precedence
        init = read_checkpoint(cfg.init_from, device)
        init_cfg = PDEformerConfig(**init["model_config"])
        if replace(init_cfg, log_scalars=False) != PRESETS[cfg.model_size]:
            raise ValueError(
                f"init_from {cfg.init_from} holds a different model size than {cfg.model_size!r}"
            )
        model = PDEformer(init_cfg).to(device)
        model.load_state_dict(init["model"])
        if cfg.log_scalars:  # an older checkpoint gains the log-scalar inputs, predicting the same at first
            model = with_log_scalars(model)
        model_cfg = model.config
    out = Path(cfg.out_dir)
    resume = cfg.resume and (out / "last.pt").exists()
    ckpt = read_checkpoint(out / "last.pt", device) if resume else None  # before the (slow) data
    shard = (rank, world) if world > 1 and cfg.shard_data else (0, 1)
    data = PDEDataset(cfg.train_data, num_mod=model_cfg.num_mod, limit=cfg.train_limit, shard=shard)
    test = PDEDataset(cfg.test_data, num_mod=model_cfg.num_mod) if cfg.test_data and rank == 0 else None
    on_device = cfg.data_on_device if cfg.data_on_device is not None else device.type == "cuda"
    sampler = DeviceSampler(data, device, seed=cfg.seed * 1000 + rank) if on_device else None
    if device.type == "cuda" and cfg.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    peak_lr = cfg.lr * lr_scale(cfg.batch_size * world, cfg.lr_reference_batch, cfg.lr_scaling)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
    # a GPU is never asked for the loss on steps that do not log: .item() would stall its queue
    sync_every = 1 if device.type == "cpu" else cfg.log_every
    opt = torch.optim.Adam(model.parameters(), lr=peak_lr)
    step, best, elapsed_before = 0, float("inf"), 0.0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, best, elapsed_before = ckpt["step"], ckpt["best_rel_l2"], ckpt.get("elapsed_s", 0.0)
    budget_s = 60 * cfg.max_minutes if cfg.max_minutes is not None else None

    def set_lr(elapsed: float) -> float:
        frac = elapsed / budget_s if budget_s else 0.0
        lr = peak_lr * warmup_cosine(step, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio, frac)
        for group in opt.param_groups:
            group["lr"] = lr
        return lr

    ddp = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(cfg.model_dump_json(indent=1))
    rng = np.random.default_rng([cfg.seed, rank, step])  # a resumed run does not replay old batches
    log = open(out / "log.jsonl", "a") if rank == 0 else None  # noqa: SIM115
    t_start = time.time() - elapsed_before
    loss_sum, loss_count = torch.zeros((), device=device), 0

    def checkpoint(rel_l2: float | None) -> None:
        nonlocal best
        state = {
            "optimizer": opt.state_dict(),
            "elapsed_s": time.time() - t_start,
            "step": step,
            "train_config": cfg.model_dump(mode="json"),
        }
        if rel_l2 is not None and rel_l2 < best:
            best = rel_l2
            save_checkpoint(out / "best.pt", model, {"step": step, "rel_l2": rel_l2, "best_rel_l2": best})
        elif best == float("inf"):  # nothing held out chose yet: best.pt is the latest weights
            save_checkpoint(out / "best.pt", model, {"step": step, "rel_l2": None, "best_rel_l2": None})
        save_checkpoint(out / "last.pt", model, {**state, "best_rel_l2": best})

    first_step = step
    try:
        while step < cfg.max_steps:
            # ---- one optimizer step ----
            model.train()
            idx = rng.integers(0, len(data), size=cfg.batch_size)
            if sampler is not None:
                graph, coords, labels = sampler.sample(
                    idx, cfg.num_query_points, cfg.x_shift, cfg.function_points
                )
            else:
                graph, coords, labels = data.sample(
                    idx, cfg.num_query_points, rng, cfg.x_shift, device, cfg.function_points
                )
            with autocast:
                pred = ddp(graph, coords)
            loss = normalized_rmse(pred.float(), labels, cfg.loss_eps)
            lr = set_lr(time.time() - t_start)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            loss_sum += loss.detach()
            loss_count += 1
            metrics: dict = {"lr": lr}  # for on_step
            if step % sync_every == 0:
                metrics["loss"] = loss.item()
            elapsed = time.time() - t_start
            out_of_time = cfg.max_minutes is not None and elapsed > 60 * cfg.max_minutes
            if world > 1:  # all ranks must agree to stop; they compare clocks only every log_every steps
                if step % cfg.log_every:
                    out_of_time = False
                else:
                    import torch.distributed as dist

                    flag = torch.tensor([float(out_of_time)], device=device)
                    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                    out_of_time = bool(flag.item())
            if rank != 0:
                if out_of_time:
                    break
                continue
            # ---- logging, evaluation, checkpoints (rank 0) ----
            record: dict = {}
            if step % cfg.log_every == 0:
                record = {
                    "step": step,
                    "loss": float(loss_sum) / loss_count,
                    "lr": lr,
                    "grad_norm": float(grad_norm),
                    "elapsed_s": round(elapsed, 1),
                }
                loss_sum, loss_count = torch.zeros((), device=device), 0
            if step % cfg.eval_every == 0 or step == cfg.max_steps or out_of_time:
                rel = None
                if test is not None:
                    rel = float(evaluate(model, test, cfg.eval_samples, device=device).mean())
                record.update({"step": step, "elapsed_s": round(elapsed, 1), "test_rel_l2": rel})
                checkpoint(rel)
                metrics["test_rel_l2"] = rel
            if record:
                log.write(json.dumps(record) + "\n")
                log.flush()
            if on_step is not None:
                on_step(step, metrics)
            if out_of_time:
                break
    except KeyboardInterrupt:  # Ctrl-C: keep what was trained, then stop as the user asked
        saved = rank == 0 and step > first_step
        if saved:
            checkpoint(None)
        if log:
            log.close()
        raise TrainingInterrupted(step, out, saved) from None
    if log:
        log.close()
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return {"step": step, "best_rel_l2": best if best < float("inf") else None, "out_dir": str(out)}
