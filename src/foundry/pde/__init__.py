"""PDEformer-1: symbolic PDE -> computational graph -> graph Transformer -> INR.

Torch-free names are exported here (so `foundry --help` stays fast); the model lives in
`foundry.pde.models.pdeformer` and prediction in `foundry.pde.inference`.
"""

from foundry.pde.graph.dag import build_graph
from foundry.pde.graph.parser import parse_function, parse_pde
from foundry.pde.graph.symbolic import PDE

__all__ = ["PDE", "build_graph", "parse_function", "parse_pde"]
