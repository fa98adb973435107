"""Graphormer-style encoder for directed graphs (PDEformer-1 §2.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GraphormerLayer(nn.Module):
    """Pre-LayerNorm Transformer layer whose attention takes an additive bias [B, H, n, n].

    Parameters
    ----------
    d_model, num_heads, ffn_dim : int
        Width, heads and feed-forward width (``ffn_dim = d_model`` in PDEformer-1).
    """

    def __init__(self, d_model: int, num_heads: int, ffn_dim: int) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.norm_attn = nn.LayerNorm(d_model)
        self.q, self.k, self.v, self.o = (nn.Linear(d_model, d_model) for _ in range(4))
        self.norm_ffn = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, ffn_dim), nn.GELU(), nn.Linear(ffn_dim, d_model))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.norm_attn(x)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.num_heads, d // self.num_heads).transpose(1, 2)  # [B, H, n, dh]

        att = F.scaled_dot_product_attention(
            heads(self.q(h)), heads(self.k(h)), heads(self.v(h)), attn_mask=bias
        )
        x = x + self.o(att.transpose(1, 2).reshape(b, n, d))
        return x + self.ffn(self.norm_ffn(x))


class GraphormerEncoder(nn.Module):
    """Graph Transformer over the PDE's computational graph.

    Node input = type embedding + in-degree embedding + out-degree embedding + the node's
    scalar/function feature. Each head's attention bias is ``Emb_fwd(spatial_pos[i, j]) +
    Emb_rev(spatial_pos[j, i])`` (two tables because the graph is directed), plus -inf where
    ``attn_mask`` is False, so a node attends only to its ancestors, descendants and itself. The
    bias is shared by all layers; there is no edge encoding and no virtual node.

    Parameters
    ----------
    d_model, num_layers, num_heads, ffn_dim : int
        Transformer sizes.
    num_node_types, num_degree, num_spatial : int
        Embedding table sizes (128, 32, 16 in the reference).
    final_norm : bool
        A LayerNorm after the last layer (ours for PDEformer-1); PDEformer-2's official encoder has
        none: its pre-LN layers' output goes to the hypernets as is.
    """

    def __init__(
        self,
        d_model: int,
        num_layers: int,
        num_heads: int,
        ffn_dim: int,
        num_node_types: int = 128,
        num_degree: int = 32,
        num_spatial: int = 16,
        final_norm: bool = True,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.type_emb = nn.Embedding(num_node_types, d_model, padding_idx=0)
        self.in_degree_emb = nn.Embedding(num_degree, d_model, padding_idx=0)
        self.out_degree_emb = nn.Embedding(num_degree, d_model, padding_idx=0)
        self.spatial_fwd = nn.Embedding(num_spatial, num_heads, padding_idx=0)
        self.spatial_rev = nn.Embedding(num_spatial, num_heads, padding_idx=0)
        self.layers = nn.ModuleList(GraphormerLayer(d_model, num_heads, ffn_dim) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(d_model) if final_norm else nn.Identity()
        for emb in (
            self.type_emb,
            self.in_degree_emb,
            self.out_degree_emb,
            self.spatial_fwd,
            self.spatial_rev,
        ):
            # Graphormer's init (N(0, 0.02)); with PyTorch's N(0, 1) the three structural embeddings,
            # identical for all PDEs of one shape, drown the per-PDE scalar and function features
            nn.init.normal_(emb.weight, std=0.02)
            with torch.no_grad():
                emb.weight[0].zero_()

    def attention_bias(self, spatial_pos: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """spatial_pos [B, n, n] long, attn_mask [B, n, n] bool -> bias [B, H, n, n]."""
        bias = self.spatial_fwd(spatial_pos) + self.spatial_rev(spatial_pos.transpose(1, 2))
        bias = bias.permute(0, 3, 1, 2)
        return bias.masked_fill(~attn_mask.unsqueeze(1), float("-inf"))

    def forward(
        self,
        features: torch.Tensor,
        node_type: torch.Tensor,
        in_degree: torch.Tensor,
        out_degree: torch.Tensor,
        spatial_pos: torch.Tensor,
        attn_mask: torch.Tensor,
    ) -> torch.Tensor:
        """features [B, n, d] -> node embeddings [B, n, d]."""
        x = features + self.structure_embedding(node_type, in_degree, out_degree)
        return self.mix(x, self.attention_bias(spatial_pos, attn_mask))

    def structure_embedding(
        self, node_type: torch.Tensor, in_degree: torch.Tensor, out_degree: torch.Tensor
    ) -> torch.Tensor:
        """Type + in-degree + out-degree embeddings [B, n, d] (the same for every PDE of one shape)."""
        return self.type_emb(node_type) + self.in_degree_emb(in_degree) + self.out_degree_emb(out_degree)

    def mix(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """The Transformer layers and final norm over node inputs x [B, n, d] with bias [B, H, n, n]."""
        for layer in self.layers:
            x = layer(x, bias)
        return self.final_norm(x)
