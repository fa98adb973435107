"""Random 2D family members: shapes, reference ranges, seeding."""

import torch

from foundry.pde.data.families2d import A_RANGE, C2_RANGE, sample_dcr, sample_wave


def test_dcr_members_lie_in_the_reference_ranges():
    p = sample_dcr(torch.Generator().manual_seed(0), 64, 16)
    q = sample_dcr(torch.Generator().manual_seed(0), 64, 16)
    assert p.u0.shape == p.source.shape == (64, 16, 16) and p.c0.shape == (64, 3)
    assert torch.equal(p.u0, q.u0) and torch.equal(p.c2, q.c2)
    assert A_RANGE[0] <= p.a.min() and p.a.max() <= A_RANGE[1]
    coefs = torch.cat([p.c0, p.c1, p.c2])
    assert coefs.abs().max() <= 1 and 0.3 < (coefs == 0).double().mean() < 0.7
    assert 0.3 < (p.source.flatten(1).abs().amax(1) == 0).double().mean() < 0.7


def test_wave_members_lie_in_the_reference_ranges():
    w = sample_wave(torch.Generator().manual_seed(1), 64, 16)
    assert w.u0.shape == w.v0.shape == w.source.shape == (64, 16, 16)
    assert C2_RANGE[0] <= w.c2.min() and w.c2.max() <= C2_RANGE[1]
    assert (w.damping >= 0).all() and (w.damping == 0).any() and (w.damping > 0).any()
