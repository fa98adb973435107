"""Weight-only int8 / int4 quantisation: closed-form error bounds, the engine with it, and its refusals."""

import pytest
import torch
from torch import nn

from foundry.llm.quantize import QuantLinear, quantize_int4, quantize_int8, unpack_int4


def test_int8_per_channel_error_is_at_most_half_a_step():
    w = torch.randn(48, 64, generator=torch.Generator().manual_seed(0)) * torch.linspace(0.1, 3, 48)[:, None]
    q, scale = quantize_int8(w)
    assert q.dtype is torch.int8 and q.abs().max() <= 127
    err = (q.float() * scale[:, None] - w).abs()
    assert torch.all(err <= scale[:, None] / 2 + 1e-6)
    assert torch.all(q.abs().amax(dim=1) == 127)  # each channel's largest weight uses the full range


def test_int4_groups_pack_two_per_byte_and_round_to_the_nearest_step():
    w = torch.randn(8, 64, generator=torch.Generator().manual_seed(1))
    packed, scale = quantize_int4(w, group_size=32)
    assert packed.dtype is torch.uint8 and packed.shape == (8, 32) and scale.shape == (8, 2)
    q = unpack_int4(packed)
    assert q.min() >= -8 and q.max() <= 7
    deq = (q.float().view(8, 2, 32) * scale[..., None]).view(8, 64)
    assert torch.all((deq - w).abs().view(8, 2, 32) <= scale[..., None] / 2 + 1e-6)
    with pytest.raises(ValueError, match="groups of 32"):
        quantize_int4(torch.randn(4, 48), group_size=32)


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quant_linear_is_the_linear_of_its_dequantised_weight(mode):
    lin = nn.Linear(64, 32, bias=True)
    ql = QuantLinear(lin, mode)
    x = torch.randn(5, 64)
    assert torch.equal(ql(x), nn.functional.linear(x, ql.dequantized(), lin.bias))
    rel = (ql(x) - lin(x)).norm() / lin(x).norm()
    assert rel < (0.01 if mode == "int8" else 0.15)
