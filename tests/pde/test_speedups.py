"""Exact speed-ups: trimmed graphs and skipped empty functions give the untrimmed model's outputs."""

import numpy as np
import torch

from foundry.pde.data.dataset import graph_to_tensors, trim_padding
from foundry.pde.data.sinus import params_to_pde, sample_params
from foundry.pde.graph.dag import GRAPH_KEYS, build_graph
from foundry.pde.models.pdeformer import build_model, with_log_scalars


def random_batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = np.linspace(-1, 1, 128, endpoint=False)
    graphs = [build_graph(params_to_pde(sample_params(rng, x), x), 3) for _ in range(n)]
    return {k: np.stack([getattr(g, k) for g in graphs]) for k in GRAPH_KEYS}


def test_trimmed_batch_gives_the_untrimmed_outputs():
    torch.manual_seed(0)
    model = build_model("XS").eval()
    arrays = random_batch()
    trimmed = trim_padding(arrays, num_branches=4)
    # the batch really is cut: fewer scalar slots and at least one empty function slot left
    assert trimmed["node_scalar"].shape[1] < 52 and trimmed["node_type"].shape[1] < 64
    assert (trimmed["node_type"][:, trimmed["node_scalar"].shape[1] :: 4] == 0).any()
    coords = torch.rand(16, 200, 2) * torch.tensor([1.0, 2.0]) - torch.tensor([0.0, 1.0])
    with torch.no_grad():
        model.skip_empty_functions = False
        full = model(graph_to_tensors(arrays), coords)
        model.skip_empty_functions = True
        fast = model(graph_to_tensors(trimmed), coords)
    assert torch.isfinite(full).all()
    assert (fast - full).abs().max() <= 1e-5 * max(1.0, full.abs().max())


def test_gradients_match_too():
    torch.manual_seed(1)
    model = build_model("XS")
    arrays = random_batch(6, seed=1)
    coords = torch.rand(6, 64, 2)
    grads = []
    for graph, skip in ((arrays, False), (trim_padding(arrays, 4), True)):
        model.zero_grad()
        model.skip_empty_functions = skip
        model(graph_to_tensors(graph), coords).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    # the padded slots' encoder work gets no gradient either way, so the gradient vectors agree
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)


def test_log_scalar_extension_keeps_the_outputs():
    torch.manual_seed(2)
    model = build_model("XS").eval()
    graph = graph_to_tensors(trim_padding(random_batch(4, seed=2), 4))
    coords = torch.rand(4, 32, 2)
    ext = with_log_scalars(model).eval()
    assert ext.config.log_scalars and ext.scalar_encoder[0].in_features == 3
    with torch.no_grad():
        torch.testing.assert_close(ext(graph, coords), model(graph, coords))
        ext.scalar_encoder[0].weight[:, 2].fill_(0.1)  # the log column is read: outputs now move
        assert not torch.allclose(ext(graph, coords), model(graph, coords))
