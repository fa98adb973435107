"""The configuration of a fused actor/critic pipeline and the 12 published FlexFusion configurations."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FusedConfig:
    pp0: int
    pp1: int
    m0: int
    m1: int
    f0: int
    f1: int

    def __post_init__(self) -> None:
        if self.pp1 > self.pp0 or self.pp0 % self.pp1:
            raise ValueError("pp1 must divide pp0")

    @property
    def nodes(self) -> int:
        return self.pp0

    @property
    def replicas(self) -> int:
        return self.pp0 // self.pp1

    def durations(self) -> tuple[int, int, int, int]:
        return (self.f0, 2 * self.f0, self.f1, 2 * self.f1)

    def node_of(self, model: int, replica: int, stage: int) -> int:
        if model == 0:
            return stage
        return replica * self.pp1 + self.pp1 - 1 - stage

    def critic_stage(self, node: int) -> int:
        return self.pp1 - 1 - node % self.pp1

    def total_work(self) -> int:
        return self.pp0 * (self.m0 * 3 * self.f0 + self.m1 * 3 * self.f1)

    def node_work(self) -> int:
        return self.m0 * 3 * self.f0 + self.m1 * 3 * self.f1


# The 12 published FlexFusion configurations: (config, seq-1F1B makespan, fused makespan, tight LB).
PUBLISHED: list[tuple[FusedConfig, int, int, int]] = [
    (FusedConfig(8, 4, 32, 16, 5, 4), 813, 708, 708),
    (FusedConfig(8, 4, 16, 8, 5, 4), 477, 372, 372),
    (FusedConfig(8, 4, 8, 4, 5, 4), 309, 225, 225),
    (FusedConfig(8, 8, 32, 32, 5, 2), 819, 702, 702),
    (FusedConfig(8, 8, 16, 16, 5, 2), 483, 366, 366),
    (FusedConfig(8, 8, 8, 8, 5, 2), 315, 225, 225),
    (FusedConfig(16, 8, 64, 32, 2, 2), 708, 618, 618),
    (FusedConfig(16, 8, 32, 16, 2, 2), 420, 330, 330),
    (FusedConfig(16, 8, 16, 8, 2, 2), 276, 186, 186),
    (FusedConfig(16, 16, 64, 64, 2, 1), 711, 613, 606),
    (FusedConfig(16, 16, 32, 32, 2, 1), 423, 318, 318),
    (FusedConfig(16, 16, 16, 16, 2, 1), 279, 186, 186),
]

