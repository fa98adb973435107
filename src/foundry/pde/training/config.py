"""Training configuration (pydantic: validated once at the boundary, then read-only)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class TrainConfig(BaseModel):
    """Everything `foundry.pde.training.train.train` needs; one default per field, here."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    train_data: Path = Field(
        description="HDF5 file from `foundry pde generate` (or generate2d), or a folder of such files."
    )
    test_data: Path | None = Field(None, description="Held-out HDF5 file (or folder) for evaluation.")
    out_dir: Path = Field(Path("out/pde/run"), description="Checkpoints and log go here.")
    model_size: str = Field("XS", description="Preset name: XS, S, M, L, XL; 2-D: 2-XS, 2-S, 2-M, 2-L.")
    batch_size: int = Field(16, gt=0, description="PDEs per step (per process under DDP).")
    num_query_points: int = Field(2048, gt=0, description="Random (t, x) points per PDE per step.")
    function_points: int | None = Field(
        None,
        gt=0,
        description="Random points of each function the function encoder sees per step (None: all).",
    )
    log_scalars: bool = Field(
        False,
        description="Scalar encoder reads (c, sign c, log10|c|); extends an init_from checkpoint exactly.",
    )
    lr: float = Field(1e-3, gt=0, description="Peak Adam learning rate at lr_reference_batch.")
    lr_scaling: Literal["none", "linear", "sqrt"] = Field(
        "none", description="Scale lr with the global batch (batch_size x processes) / lr_reference_batch."
    )
    lr_reference_batch: int = Field(16, gt=0, description="Global batch at which lr is the given value.")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16: autocast forward on CUDA/CPU.")
    tf32: bool = Field(False, description="Allow TF32 matrix products on CUDA.")
    data_on_device: bool | None = Field(
        None, description="Hold the data on the device and draw batches there (None: on for CUDA)."
    )
    shard_data: bool = Field(True, description="Under DDP each process loads only its slice of the file.")
    warmup_steps: int = Field(300, ge=0, description="Linear warm-up steps before the cosine decay.")
    max_steps: int = Field(10_000, gt=0, description="Total optimizer steps (the cosine's length).")
    min_lr_ratio: float = Field(0.02, ge=0, le=1, description="Final lr as a fraction of the peak.")
    grad_clip: float = Field(1.0, gt=0, description="Max global gradient norm.")
    loss_eps: float = Field(0.05, gt=0, description="eps of the normalised RMSE loss.")
    x_shift: bool = Field(True, description="Random circular x-shift augmentation (periodic data).")
    log_every: int = Field(50, gt=0, description="Steps between log lines.")
    eval_every: int = Field(1000, gt=0, description="Steps between held-out evaluations and checkpoints.")
    eval_samples: int = Field(256, gt=0, description="Held-out samples used by periodic evaluations.")
    max_minutes: float | None = Field(None, gt=0, description="Stop (and checkpoint) after this wall time.")
    train_limit: int | None = Field(None, gt=0, description="Use only the first N training samples.")
    seed: int = Field(0, description="Seed of initialisation and batch sampling.")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps.")
    resume: bool = Field(True, description="Continue from out_dir/last.pt if it exists.")
    init_from: Path | None = Field(
        None, description="Start from this checkpoint's weights (finetuning); the optimizer starts fresh."
    )

    @field_validator("model_size")
    @classmethod
    def _known_size(cls, v: str) -> str:
        from foundry.pde.models.pdeformer import PRESETS  # (torch; the CLI reads this module at start-up)

        if v not in PRESETS:
            raise ValueError(f"unknown model_size {v!r}; choose one of {sorted(PRESETS)}")
        return v
