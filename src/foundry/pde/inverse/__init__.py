"""Inverse problems through PDEformer: scalar coefficients (PSO, gradient) and fields (Adam)."""

from foundry.pde.inverse.field import recover_field
from foundry.pde.inverse.problems import Observations, make_problem, observe
from foundry.pde.inverse.pso import PSOConfig, pso_minimize
from foundry.pde.inverse.scalar import ScalarInversion, recover_gradient, recover_pso

__all__ = [
    "Observations",
    "PSOConfig",
    "ScalarInversion",
    "make_problem",
    "observe",
    "pso_minimize",
    "recover_field",
    "recover_gradient",
    "recover_pso",
]
