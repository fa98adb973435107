"""PDEformer-2 as configurations of PDEformer: CNN function encoder, sine Poly-INR, 2-D presets."""

from dataclasses import replace

import pytest
import torch

from foundry.pde.inference import load_model
from foundry.pde.layers.cnn_function_encoder import CNNFunctionEncoder
from foundry.pde.layers.poly_inr import PolyINR
from foundry.pde.models.pdeformer import (
    PRESETS,
    PDEformer,
    PDEformerConfig,
    build_model,
    num_parameters,
    preset_name,
    with_log_scalars,
)


def random_graph(model: PDEformer, batch: int, n_points: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random graph batch with the array shapes of ``model.graph_sizes``; function slot 0 is used."""
    gen = torch.Generator().manual_seed(seed)
    sizes, c = model.graph_sizes, model.config
    n_s, n_f, nb, n = (
        sizes.max_n_scalar_nodes,
        sizes.max_n_function_nodes,
        sizes.num_branches,
        sizes.num_nodes,
    )
    node_type = torch.randint(1, c.num_node_types, (batch, n), generator=gen)
    node_type[:, n_s - 10 : n_s] = 0  # padded scalar slots
    node_type[:, n_s + nb :] = 0  # unused function slots
    real = node_type > 0
    eye = torch.eye(n, dtype=torch.bool)
    return {
        "node_type": node_type,
        "node_scalar": torch.randn(batch, n_s, generator=gen),
        "function_values": torch.rand(batch, n_f, n_points, c.num_coords, generator=gen),
        "in_degree": torch.randint(1, 5, (batch, n), generator=gen) * real,
        "out_degree": torch.randint(1, 5, (batch, n), generator=gen) * real,
        "spatial_pos": torch.randint(1, c.num_spatial, (batch, n, n), generator=gen),
        "attn_mask": (real[:, :, None] & real[:, None, :]) | eye,
    }


def test_2xs_forward_shape_and_batch_independence():
    torch.manual_seed(0)
    model = build_model("2-XS")
    graph = random_graph(model, batch=2, n_points=32 * 32)
    coords = torch.rand(2, 40, 3)
    u = model(graph, coords)
    assert u.shape == (2, 40) and torch.isfinite(u).all()
    single = model({k: v[1:] for k, v in graph.items()}, coords[1:])
    torch.testing.assert_close(single, u[1:], rtol=1e-5, atol=1e-5)
    assert u.std(dim=1).min() > 1e-3  # the sine INR is not constant in (t, x, y)


def test_gradient_reaches_the_cnn_encoder():
    torch.manual_seed(0)
    model = build_model("2-XS")
    model(random_graph(model, batch=2, n_points=32 * 32), torch.rand(2, 16, 3)).square().mean().backward()
    for name, p in model.function_encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("grid", [32, 64, 128])
def test_cnn_encoder_gives_four_tokens_per_function(grid):
    enc = CNNFunctionEncoder(d_model=16, grid=grid)
    out = enc(torch.rand(2, 3, grid * grid, 3))
    assert out.shape == (2, 3 * 4, 16)
    with pytest.raises(ValueError, match="points per function"):
        enc(torch.rand(1, 1, grid * grid - 1, 3))


def test_cnn_encoder_reads_values_by_position():
    torch.manual_seed(0)
    g = 32
    enc = CNNFunctionEncoder(d_model=8, grid=g)
    field = torch.rand(1, 1, g, g)
    coords = torch.rand(1, 1, g * g, 2)

    def encode(f: torch.Tensor, xy: torch.Tensor = coords) -> torch.Tensor:
        return enc(torch.cat([xy, f.reshape(1, 1, g * g, 1)], dim=-1))[0]  # [4, d]

    base = encode(field)
    torch.testing.assert_close(encode(field, -torch.ones_like(coords)), base)  # coordinate columns unused
    # translation-sensitive: a shifted field is encoded differently
    assert not torch.allclose(encode(torch.roll(field, shifts=(3, 5), dims=(2, 3))), base, atol=1e-4)
    # token 2r + c reads quadrant (r, c) only (kernel = stride): point i*G + j is (x_i, y_j), x = rows
    bumped = field.clone()
    bumped[..., g // 2 :, : g // 2] += 1.0  # x in the second half, y in the first: quadrant (1, 0)
    changed = (encode(bumped) - base).abs().amax(dim=1) > 0
    assert changed.tolist() == [False, False, True, False]


def test_fresh_sine_inr_varies_with_coordinates():
    torch.manual_seed(0)
    z = torch.rand(1, 500, 3)
    for hidden, layers in [(64, 4), (128, 12)]:  # 2-XS's INR and PDEformer-2's depth
        inr = PolyINR(3, hidden, 1, layers, activation="sin")
        assert inr(z).std().item() > 0.1
    with pytest.raises(ValueError, match="activation"):
        PolyINR(3, 8, 1, 3, activation="tanh")


# Official counts (functoreality/pdeformer-2 configs/inference/model-{S,M,L}.yaml, built as in
# src/cell/pdeformer/*): README / paper 27.75 M, 71.07 M, 82.65 M.
@pytest.mark.parametrize(
    ("size", "millions", "exact"),
    [("2-S", 27.75, 27_749_921), ("2-M", 71.07, 71_066_529), ("2-L", 82.65, 82_646_433)],
)
def test_pdeformer2_parameter_counts(size, millions, exact):
    with torch.device("meta"):
        model = PDEformer(PRESETS[size])
    assert round(num_parameters(model) / 1e6, 2) == millions
    assert num_parameters(model) == exact


def test_2xs_is_cpu_sized():
    with torch.device("meta"):
        model = PDEformer(PRESETS["2-XS"])
    assert 1e6 <= num_parameters(model) <= 2e6


# Outputs of the shipped 1-D checkpoint (log_scalars XS) on `_fixed_1d_inputs`, computed on main at
# 34804a8 (before the PDEformer-2 fields existed) with OMP_NUM_THREADS=1: load_model(), no_grad,
# [float(v) for v in model(graph, coords)[0]]. The defaults of the new fields must reproduce them.
SHIPPED_OUTPUTS = [
    0.019065704196691513,
    -0.7065452933311462,
    0.8474259972572327,
    -0.22878672182559967,
    -0.6915823817253113,
    0.22605152428150177,
    -0.6047748923301697,
    -0.8260125517845154,
]


def _fixed_1d_inputs() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A deterministic graph (no RNG) with padded scalar slots and an unused function slot."""
    n_s, f, br, p = 10, 2, 4, 64
    n = n_s + f * br
    i = torch.arange(n)
    node_type = (i * 7 % 23 + 1).view(1, n)
    node_type[0, n_s + br :] = 0
    node_type[0, 8:n_s] = 0
    real = node_type[0] > 0
    attn_mask = (real.view(-1, 1) & real.view(1, -1)) | torch.eye(n, dtype=torch.bool)
    x = torch.linspace(-1, 1, p)
    fv = torch.zeros(1, f, p, 2)
    fv[0, 0, :, 0] = x
    fv[0, 0, :, 1] = torch.sin(torch.pi * x) + 0.3 * x
    graph = {
        "node_type": node_type,
        "node_scalar": (torch.arange(n_s, dtype=torch.float32) * 0.37 - 1.1).view(1, n_s),
        "function_values": fv,
        "in_degree": (i % 5).view(1, n),
        "out_degree": (i * 3 % 4).view(1, n),
        "spatial_pos": ((i.view(-1, 1) * n + i.view(1, -1)) % 9 + 1).view(1, n, n),
        "attn_mask": attn_mask.view(1, n, n),
    }
    q = torch.arange(8, dtype=torch.float32)
    coords = torch.stack([q / 7, (q * 3 % 8) / 4 - 1], -1).view(1, 8, 2)
    return graph, coords


def test_shipped_1d_checkpoint_outputs_unchanged():
    model, _ = load_model()
    graph, coords = _fixed_1d_inputs()
    with torch.no_grad():
        u = model(graph, coords)[0]
    assert torch.equal(u, torch.tensor(SHIPPED_OUTPUTS, dtype=torch.float32))


def test_configs_without_the_new_fields_load_as_pdeformer1():
    old = {k: v for k, v in PRESETS["XS"].to_dict().items() if k not in ("num_coords", "function_encoder")}
    old = {k: v for k, v in old.items() if k not in ("function_grid", "inr_activation", "final_norm")}
    assert PDEformerConfig(**old) == PRESETS["XS"]
    assert preset_name(old) == "XS"
    for name in ("2-XS", "2-S", "2-M", "2-L"):
        assert preset_name(PRESETS[name].to_dict()) == name
        assert preset_name(replace(PRESETS[name], log_scalars=True).to_dict()) == name


def test_log_scalars_with_the_2d_model():
    torch.manual_seed(0)
    model = build_model("2-XS").eval()
    graph = random_graph(model, batch=1, n_points=32 * 32)
    coords = torch.rand(1, 10, 3)
    extended = with_log_scalars(model)
    assert extended.config.log_scalars and extended.config.function_encoder == "cnn"
    torch.testing.assert_close(extended(graph, coords), model(graph, coords))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"function_encoder": "cnn", "num_branches": 3}, "num_branches"),
        ({"function_encoder": "cnn", "function_grid": 48}, "multiple of 32"),
        ({"function_encoder": "fourier"}, "function_encoder"),
        ({"inr_activation": "tanh"}, "inr_activation"),
        ({"num_coords": 1}, "num_coords"),
    ],
)
def test_config_checks(changes, match):
    with pytest.raises(ValueError, match=match):
        PDEformerConfig(**changes)
