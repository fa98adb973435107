"""Step-time cost models behind one interface (`CostModel.predict(BatchFeatures) -> seconds`)."""

from foundry.sim.cost_models.base import CostModel
from foundry.sim.cost_models.fitted import FitReport, LinearCostModel, load_fitted
from foundry.sim.cost_models.published import published_cost_model
from foundry.sim.cost_models.replay import ReplayCostModel
from foundry.sim.cost_models.roofline import RooflineCostModel

__all__ = ["CostModel", "FitReport", "LinearCostModel", "ReplayCostModel", "RooflineCostModel",
           "load_fitted", "published_cost_model"]
