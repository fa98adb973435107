"""Inverse problems through PDEformer: scalar coefficients (PSO, gradient) and fields (Adam), 1-D and 2-D."""

from foundry.pde.inverse.field import recover_field
from foundry.pde.inverse.problems import Observations, make_problem, observe
from foundry.pde.inverse.problems2d import ScatteredObservations, make_problem2d, observe2d
from foundry.pde.inverse.pso import PSOConfig, pso_minimize
from foundry.pde.inverse.scalar import ScalarInversion, recover_gradient, recover_pso

__all__ = [
    "Observations",
    "PSOConfig",
    "ScatteredObservations",
    "ScalarInversion",
    "make_problem",
    "make_problem2d",
    "observe",
    "observe2d",
    "pso_minimize",
    "recover_field",
    "recover_gradient",
    "recover_pso",
]
