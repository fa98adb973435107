"""PDEformer-1 and -2: symbolic PDE graph -> graph Transformer -> modulated Poly-INR.

PDEformer-1 (arXiv 2407.06664) is the default configuration; PDEformer-2 (2-D, CNN function
encoder, sine Poly-INR) is the same class with the "2-*" presets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from foundry.pde.graph.dag import NUM_NODE_TYPES, GraphSizes
from foundry.pde.layers.cnn_function_encoder import CNNFunctionEncoder
from foundry.pde.layers.function_encoder import WeightedDeepSet
from foundry.pde.layers.graphormer import GraphormerEncoder
from foundry.pde.layers.mlp import MLP
from foundry.pde.layers.poly_inr import PolyINR


@dataclass(frozen=True)
class PDEformerConfig:
    """Sizes of a PDEformer; the named presets are in `PRESETS` (S/M/L/XL as in the reference,
    2-S/2-M/2-L as PDEformer-2's official configs, XS and 2-XS for CPU training).

    The defaults are PDEformer-1; a checkpoint written before a field existed loads with its default.

    Attributes
    ----------
    d_model, num_layers, num_heads, ffn_dim : graph Transformer (FFN = d_model in PDEformer-1)
    inr_hidden, inr_layers : Poly-INR width and layer count (inr_layers - 1 modulated hidden layers)
    scalar_hidden, scalar_layers : scalar encoder MLP 1 -> d_model
    function_hidden, function_layers, num_branches : weighted DeepSet function encoder
    hypernet_hidden, hypernet_layers : per-layer scale/shift hypernets d_model -> inr_hidden
    num_node_types, num_degree, num_spatial : embedding table sizes
    log_scalars : the scalar encoder reads (c, sign c, log10|c|) instead of c alone, so that
        coefficients spanning decades (kappa in [1e-3, 1]) are told apart; checkpoints without
        the field load with False
    num_coords : coordinates the INR reads: 2 = (t, x) in 1-D, 3 = (t, x, y) in 2-D; the official
        PDEformer-2 reads 4 = (t, x, y, z) with z = 0 for 2-D data. Function points have as many
        columns (d spatial coordinates + the value, d = num_coords - 1)
    function_encoder : "deepset" (PDEformer-1's weighted DeepSet, any point set) or "cnn"
        (PDEformer-2's ``cnn2dv3`` on a function_grid x function_grid grid, num_branches = 4)
    function_grid : G of the CNN encoder (a multiple of 32; 128 in PDEformer-2)
    inr_activation : "leaky" (PDEformer-1) or "sin" (PDEformer-2) in the Poly-INR hidden layers
    final_norm : LayerNorm after the graph Transformer (PDEformer-1 here; the official
        PDEformer-2 encoder has none)
    """

    d_model: int = 128
    num_layers: int = 4
    num_heads: int = 16
    ffn_dim: int = 128
    inr_hidden: int = 64
    inr_layers: int = 4
    scalar_hidden: int = 256
    scalar_layers: int = 3
    function_hidden: int = 512
    function_layers: int = 3
    num_branches: int = 4
    hypernet_hidden: int = 256
    hypernet_layers: int = 3
    num_node_types: int = NUM_NODE_TYPES
    num_degree: int = 32
    num_spatial: int = 16
    log_scalars: bool = False
    num_coords: int = 2
    function_encoder: str = "deepset"
    function_grid: int = 128
    inr_activation: str = "leaky"
    final_norm: bool = True

    def __post_init__(self) -> None:
        if self.num_coords < 2:
            raise ValueError(f"num_coords must be >= 2 (t and one space axis), got {self.num_coords}")
        if self.function_encoder not in ("deepset", "cnn"):
            raise ValueError(f"function_encoder must be 'deepset' or 'cnn', got {self.function_encoder!r}")
        if self.inr_activation not in PolyINR.ACTIVATIONS:
            raise ValueError(
                f"inr_activation must be one of {PolyINR.ACTIVATIONS}, got {self.inr_activation!r}"
            )
        if self.function_encoder == "cnn":
            if self.num_branches != CNNFunctionEncoder.num_branches:
                raise ValueError(
                    f"the CNN encoder gives 4 tokens: num_branches must be 4, got {self.num_branches}"
                )
            if self.function_grid < 32 or self.function_grid % 32:
                raise ValueError(f"function_grid must be a positive multiple of 32, got {self.function_grid}")

    @property
    def num_mod(self) -> int:
        """Modulation nodes per unknown = modulated INR hidden layers."""
        return self.inr_layers - 1

    def to_dict(self) -> dict[str, int | bool | str]:
        return asdict(self)


def _size(d: int, layers: int, heads: int, inr_hidden: int, inr_layers: int) -> PDEformerConfig:
    return PDEformerConfig(
        d_model=d, num_layers=layers, num_heads=heads, ffn_dim=d, inr_hidden=inr_hidden, inr_layers=inr_layers
    )


PRESETS: dict[str, PDEformerConfig] = {
    # XS: the CPU-trainable size (small function encoder and hypernets, the reference's advice).
    "XS": PDEformerConfig(
        d_model=128,
        num_layers=4,
        num_heads=8,
        ffn_dim=128,
        inr_hidden=64,
        inr_layers=4,
        scalar_hidden=128,
        function_hidden=128,
        hypernet_hidden=128,
    ),
    "S": _size(128, 4, 16, 64, 4),
    "M": _size(256, 6, 32, 128, 6),
    "L": _size(512, 9, 32, 256, 9),
    "XL": _size(768, 12, 32, 512, 12),
}


# the official embedding table has num_node_type + 1 = 129 rows (128 types and padding index 0)
NUM_NODE_TYPES_V2 = 129


def _size2(d: int, layers: int, inr_hidden: int) -> PDEformerConfig:
    """PDEformer-2 as in the official ``configs/inference/model-{S,M,L}.yaml``."""
    return PDEformerConfig(
        d_model=d,
        num_layers=layers,
        num_heads=32,
        ffn_dim=2 * d,
        inr_hidden=inr_hidden,
        inr_layers=12,
        scalar_hidden=256,
        scalar_layers=3,
        hypernet_hidden=512,
        hypernet_layers=2,
        num_node_types=NUM_NODE_TYPES_V2,
        num_coords=4,
        function_encoder="cnn",
        function_grid=128,
        inr_activation="sin",
        final_norm=False,
    )


PRESETS.update(
    {
        # 2-XS: CPU-trainable 2-D model, (t, x, y) input, 32 x 32 function grids
        "2-XS": PDEformerConfig(
            d_model=128,
            num_layers=4,
            num_heads=8,
            ffn_dim=256,
            inr_hidden=64,
            inr_layers=4,
            scalar_hidden=256,
            scalar_layers=3,
            hypernet_hidden=256,
            hypernet_layers=2,
            num_node_types=NUM_NODE_TYPES_V2,
            num_coords=3,
            function_encoder="cnn",
            function_grid=32,
            inr_activation="sin",
            final_norm=False,
        ),
        "2-S": _size2(512, 9, 128),  # PDEformer-2-small, 27.75 M
        "2-M": _size2(768, 12, 256),  # PDEformer-2-fast, 71.07 M
        "2-L": _size2(768, 12, 768),  # PDEformer-2-base, 82.65 M
    }
)


class PDEformer(nn.Module):
    """PDEformer: predicts u(t, x) (or u(t, x, y) with the "2-*" configs) of a PDE given as a graph.

    The scalar encoder embeds each node's number, the weighted-DeepSet function encoder turns
    every function (initial condition, coefficient field) into ``num_branches`` tokens, the graph
    Transformer mixes them along the graph's structure, and the final embeddings of the first
    ``inr_layers - 1`` nodes (the target unknown's ``Mod`` nodes) feed per-layer hypernets that
    scale and shift the hidden layers of a Poly-INR evaluated at the query points (§2.1-2.3).

    Parameters
    ----------
    config : PDEformerConfig
        Sizes; see `PRESETS`.
    graph_sizes : GraphSizes, optional
        Padding of the graph arrays the model will read.
    """

    def __init__(self, config: PDEformerConfig, graph_sizes: GraphSizes | None = None) -> None:
        super().__init__()
        c = self.config = config
        self.graph_sizes = graph_sizes or GraphSizes.for_dim(
            c.num_coords - 1, num_branches=c.num_branches, num_spatial=c.num_spatial, num_degree=c.num_degree
        )
        self.scalar_encoder = MLP(3 if c.log_scalars else 1, c.scalar_hidden, c.d_model, c.scalar_layers)
        # encode only the function slots that hold a function (exact: padded branch nodes are masked
        # out of every real node's attention); off reproduces the original full-padding computation
        self.skip_empty_functions = True
        self.function_encoder: nn.Module
        if c.function_encoder == "cnn":
            self.function_encoder = CNNFunctionEncoder(c.d_model, c.function_grid)
        else:
            self.function_encoder = WeightedDeepSet(
                c.d_model, c.function_hidden, c.function_layers, c.num_branches, c.num_coords
            )
        self.graph_encoder = GraphormerEncoder(
            c.d_model,
            c.num_layers,
            c.num_heads,
            c.ffn_dim,
            c.num_node_types,
            c.num_degree,
            c.num_spatial,
            final_norm=c.final_norm,
        )
        self.scale_nets = nn.ModuleList(
            MLP(c.d_model, c.hypernet_hidden, c.inr_hidden, c.hypernet_layers) for _ in range(c.num_mod)
        )
        self.shift_nets = nn.ModuleList(
            MLP(c.d_model, c.hypernet_hidden, c.inr_hidden, c.hypernet_layers) for _ in range(c.num_mod)
        )
        self.inr = PolyINR(c.num_coords, c.inr_hidden, 1, c.inr_layers, activation=c.inr_activation)

    def scalar_features(self, node_scalar: torch.Tensor) -> torch.Tensor:
        """Node scalars [B, n] -> scalar encoder input [B, n, 1 or 3] (see ``log_scalars``)."""
        c = node_scalar.unsqueeze(-1)
        if not self.config.log_scalars:
            return c
        nonzero = c != 0
        log = torch.where(nonzero, torch.log10(c.abs().clamp_min(1e-30)), torch.zeros_like(c))
        return torch.cat([c, torch.sign(c), log], dim=-1)

    def encode_functions(self, graph: dict[str, torch.Tensor]) -> torch.Tensor:
        """Function point sets [B, F, P, num_coords] -> branch tokens [B, F * num_branches, d_model]."""
        fv = graph["function_values"]
        b, f = fv.shape[:2]
        if not (self.skip_empty_functions and fv.device.type == "cpu"):  # a GPU skips the host sync
            return self.function_encoder(fv)
        n_scalar = graph["node_scalar"].shape[1]
        real = graph["node_type"][:, n_scalar :: self.config.num_branches] > 0  # [B, F]
        if bool(real.all()):
            return self.function_encoder(fv)
        tokens = self.function_encoder(fv[real].unsqueeze(0))[0]  # [n_real * branches, d]
        out = tokens.new_zeros(b, f, self.config.num_branches, self.config.d_model)
        out[real] = tokens.view(-1, self.config.num_branches, self.config.d_model)
        return out.view(b, f * self.config.num_branches, self.config.d_model)

    def encode(self, graph: dict[str, torch.Tensor]) -> torch.Tensor:
        """Graph arrays (batched `PDEGraph` fields, padded or `trim_padding`-ed) -> [B, num_mod, d_model]."""
        scalar = self.scalar_encoder(self.scalar_features(graph["node_scalar"]))  # [B, n_scalar, d]
        functions = self.encode_functions(graph)  # [B, n_fn * branches, d]
        h = self.graph_encoder(
            torch.cat([scalar, functions], dim=1),
            graph["node_type"],
            graph["in_degree"],
            graph["out_degree"],
            graph["spatial_pos"],
            graph["attn_mask"],
        )
        return h[:, : self.config.num_mod]

    def decode(self, mods: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """Modulations [B, num_mod, d] and query points (t, x[, y, ...]) [B, Q, num_coords] -> u [B, Q]."""
        scales = [net(mods[:, i]) for i, net in enumerate(self.scale_nets)]
        shifts = [net(mods[:, i]) for i, net in enumerate(self.shift_nets)]
        return self.inr(coords, scales, shifts).squeeze(-1)

    def forward(self, graph: dict[str, torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(graph), coords)


def preset_name(config: dict) -> str | None:
    """The preset a checkpoint's ``model_config`` was built from (options such as log_scalars aside)."""
    c = replace(PDEformerConfig(**config), log_scalars=False)
    return next((name for name, preset in PRESETS.items() if preset == c), None)


def build_model(size: str | PDEformerConfig) -> PDEformer:
    """A PDEformer from a preset name (XS, S, M, L, XL, 2-XS, 2-S, 2-M, 2-L) or a config."""
    if isinstance(size, str):
        if size not in PRESETS:
            raise ValueError(f"unknown model size {size!r}; choose one of {sorted(PRESETS)}")
        size = PRESETS[size]
    return PDEformer(size)


def with_log_scalars(model: PDEformer) -> PDEformer:
    """A copy of ``model`` whose scalar encoder also reads sign(c) and log10|c|, same outputs.

    The new input columns of the first layer start at zero, so the result predicts exactly what
    ``model`` does; training then learns to use them (how a shipped checkpoint is extended).
    """
    if model.config.log_scalars:
        return model
    new = PDEformer(replace(model.config, log_scalars=True)).to(next(model.parameters()).device)
    state = model.state_dict()
    w = state["scalar_encoder.0.weight"]
    state["scalar_encoder.0.weight"] = torch.cat(
        [w, torch.zeros(w.shape[0], 2, dtype=w.dtype, device=w.device)], 1
    )
    new.load_state_dict(state)
    return new


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
