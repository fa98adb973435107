"""The settings of `foundry.pde.data.generate2d` (kept free of torch so that the CLI starts fast)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Family = Literal[
    "dcr-periodic",
    "wave-periodic",
    "dcr-square",
    "dcr-disk",
    "wave-square-mur",
    "wave-disk-mur",
    "mvdcr-periodic",
    "ins-periodic",
    "swe-periodic",
    "steady-periodic",
    "steady-square",
    "steady-disk",
]
FAMILIES: tuple[str, ...] = Family.__args__
PERIODIC = (
    "dcr-periodic",
    "wave-periodic",
    "mvdcr-periodic",
    "ins-periodic",
    "swe-periodic",
    "steady-periodic",
)
# the steps of the INS and SWE solvers (`ins2d`, `swe2d`: measured stable and accurate at 64^2)
SYSTEM_DTS = {"ins-periodic": (1e-3, 5e-4, 2.5e-4), "swe-periodic": (1e-3, 5e-4, 2.5e-4)}
STEADY = ("steady-periodic", "steady-square", "steady-disk")  # one frame, t = 0
DISK = ("dcr-disk", "wave-disk-mur", "steady-disk")  # files with a per-row inside mask
C2_MAX = 4.0  # the largest squared wave speed `families2d` draws (its C2_RANGE)


class Generate2DConfig(BaseModel):
    """What to generate (one family per file).

    Attributes
    ----------
    family : one of `FAMILIES`
    num_samples : rows wanted in the file (MV-DCR: K rows per member; the last member may be cut)
    seed : base seed; chunk i draws from ``SeedSequence([seed, i])``
    resolution : G, stored points per axis (solved on 2G periodic points or 2G - 1 nodes)
    num_t : saved frames, uniform on [0, 1] (steady families store one, t = 0)
    dt : first time step of the DCR/MV-DCR solvers; with ``refine`` failed members are re-solved at
        dt/2 and dt/8 (MV-DCR: dt/2, dt/4, dt/8), the reference's n_sub sequence (INS, SWE: their
        solvers' steps `SYSTEM_DTS`)
    refine : re-solve failed members at the smaller steps (else they are dropped after one try)
    wave_cfl : sqrt(max c2) dt / h of the square's leapfrog (its dt is the largest divisor of the
        save interval within this; stable up to 1/sqrt(2))
    num_mod : modulation nodes per unknown in the graphs (= INR hidden layers of the model)
    chunk_size : members drawn and solved as one batch
    mv_components : K of the MV-DCR family
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    family: str = Field("dcr-periodic", description="Which 2-D family (docs/pde2.md lists them).")
    num_samples: int = Field(1000, ge=1, description="Rows wanted (MV-DCR: K rows per member).")
    seed: int = Field(0, ge=0, description="Base seed; the file depends only on the config.")
    resolution: int = Field(32, ge=4, description="Stored points per axis G (solved on a 2x grid).")
    num_t: int = Field(21, ge=2, description="Saved frames on t in [0, 1].")
    dt: float = Field(2.5e-3, gt=0, description="First DCR/MV-DCR time step (refined where a member fails).")
    refine: bool = Field(True, description="Re-solve failed members at smaller steps.")
    wave_cfl: float = Field(0.5, gt=0, le=0.7, description="Leapfrog CFL number on the square.")
    num_mod: int = Field(3, ge=1, le=16, description="Modulation nodes per unknown (= INR layers - 1).")
    chunk_size: int = Field(16, ge=1, description="Members drawn and solved as one batch.")
    mv_components: int = Field(2, ge=2, le=4, description="Unknowns K of the MV-DCR family.")

    @field_validator("family")
    @classmethod
    def _known_family(cls, v: str) -> str:
        if v not in FAMILIES:
            raise ValueError(f"unknown family {v!r}; choose one of {', '.join(FAMILIES)}")
        return v

    @model_validator(mode="after")
    def _dt_divides(self) -> Generate2DConfig:
        for dt in self.dts:
            ratio = (1.0 / (self.num_t - 1)) / dt
            if abs(ratio - round(ratio)) > 1e-6:
                raise ValueError(f"dt: {dt:g} does not divide the save interval 1/{self.num_t - 1}")
        return self

    @property
    def dts(self) -> tuple[float, ...]:
        """The time steps tried in order by the DCR/MV-DCR solvers."""
        if self.family in SYSTEM_DTS:
            steps = SYSTEM_DTS[self.family]
            return steps if self.refine else steps[:1]
        if not self.refine:
            return (self.dt,)
        div = (1, 2, 4, 8) if self.family == "mvdcr-periodic" else (1, 2, 8)
        return tuple(self.dt / d for d in div)

    @property
    def solver_n(self) -> int:
        """Points per axis of the solver grid."""
        return 2 * self.resolution if self.family in PERIODIC else 2 * self.resolution - 1

    @property
    def wave_dt(self) -> float:
        """Leapfrog step of ``wave-square-mur`` and ``wave-disk-mur``: save interval / k, the smallest k
        within `wave_cfl`."""
        save, h = 1.0 / (self.num_t - 1), 1.0 / (self.solver_n - 1)
        return save / math.ceil(save * math.sqrt(C2_MAX) / (self.wave_cfl * h))

    @property
    def frames(self) -> int:
        """Stored frames: ``num_t``, or 1 (t = 0) for a time-independent family."""
        return 1 if self.family in STEADY else self.num_t

    @property
    def num_rows(self) -> int:
        """Rows per kept member."""
        if self.family in SYSTEM_DTS:
            return 3  # INS: u, v and the pressure p; SWE: h, u, v
        return self.mv_components if self.family == "mvdcr-periodic" else 1
