"""foundry.sim: the serving engine's policies and block manager on a virtual clock, with cost models."""

from foundry.sim.deployment import Deployment, resolve_deployment
from foundry.sim.dispatch import Dispatcher, LeastLoaded, RoundRobin
from foundry.sim.run import make_policy, simulate, simulate_report
from foundry.sim.simulator import Instance, SimResult, Simulator

__all__ = ["Deployment", "Dispatcher", "Instance", "LeastLoaded", "RoundRobin", "SimResult", "Simulator",
           "make_policy", "resolve_deployment", "simulate", "simulate_report"]
