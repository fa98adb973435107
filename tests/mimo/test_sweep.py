import numpy as np
import pytest
from pydantic import ValidationError

from foundry.mimo import sweep
from foundry.mimo.sweep import SweepConfig

SMALL = dict(bs_antennas=16, users=4, snr_db=[0, 20], draws=12, chunk=5)


def test_rows_cover_every_precoder_iq_and_snr():
    cfg = SweepConfig(**SMALL, precoders=["zf", "wl-zf", "mf"])
    rows = sweep.run(cfg)
    assert len(rows) == 3 * 2 * 2
    assert {(r["precoder"], r["iq"]) for r in rows} == {
        (p, iq) for p in cfg.precoders for iq in ("ideal", "iqi")
    }
    by = {(r["precoder"], r["iq"], r["snr_db"]): r["sum_rate"] for r in rows}
    assert by["wl-zf", "ideal", 20.0] == pytest.approx(by["zf", "ideal", 20.0], abs=1e-9)
    assert by["wl-zf", "iqi", 20.0] > by["zf", "iqi", 20.0]
    assert all(r["std_err"] > 0 and r["draws"] == 12 for r in rows)


def test_seeded_and_chunking_only_changes_the_order_of_draws():
    cfg = SweepConfig(**SMALL, precoders=["mmse"])
    a, b = sweep.simulate(cfg), sweep.simulate(cfg)
    np.testing.assert_array_equal(a["mmse", "iqi"], b["mmse", "iqi"])
    one_chunk = sweep.simulate(cfg.model_copy(update={"chunk": 100, "draws": 5}))
    np.testing.assert_allclose(one_chunk["mmse", "iqi"], a["mmse", "iqi"][:, :5])  # first chunk identical


def test_multi_antenna_and_per_stream_variants():
    cfg = SweepConfig(**{**SMALL, "users": 3}, user_antennas=2, precoders=["bd", "wl-bd", "zf"])
    rows = sweep.run(cfg)
    assert len(rows) == 12
    cfg = SweepConfig(**SMALL, precoders=["zf", "wl-zf"], rate="per_stream", normalization="per_stream")
    by = {(r["precoder"], r["iq"], r["snr_db"]): r["sum_rate"] for r in sweep.run(cfg)}
    assert by["wl-zf", "ideal", 0.0] == pytest.approx(by["zf", "ideal", 0.0])


def test_correlated_channels_lower_the_zf_rate():
    base = {**SMALL, "draws": 40, "precoders": ["zf"]}
    r0 = sweep.simulate(SweepConfig(**base))["zf", "ideal"].mean()
    r1 = sweep.simulate(SweepConfig(**base, tx_correlation=0.9))["zf", "ideal"].mean()
    assert r1 < r0


def test_outputs(tmp_path):
    cfg = SweepConfig(**SMALL, precoders=["zf", "wl-zf"])
    rows = sweep.run(cfg)
    sweep.write_csv(rows, tmp_path / "s.csv")
    sweep.plot(cfg, rows, tmp_path / "s.png")
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0] == "precoder,iq,snr_db,sum_rate,std_err,draws" and len(lines) == 9
    assert (tmp_path / "s.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"draws": -1}, "draws"),
        ({"precoders": ["zf", "rzf"]}, "unknown precoder.*rzf.*valid: zf, mmse, mf, bd"),
        ({"users": 20}, "users × user_antennas = 20 exceeds bs_antennas = 16"),
        ({"sigma_g": 0.7}, "sigma_g"),
        ({"sigma_theta_deg": -1}, "sigma_theta_deg"),
        ({"theta_law": "normal"}, "theta_law"),
        ({"snr_db": []}, "snr_db"),
        ({"user_antennas": 2, "rate": "per_stream"}, "per_stream.*user_antennas"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_configs_name_the_field(update, message):
    with pytest.raises(ValidationError, match=message):
        SweepConfig(**{**SMALL, **update})


def test_mmse_and_mf_need_no_rank():
    # more users than antennas: ZF has no inverse, MMSE (regularised) and MF still serve everyone
    cfg = SweepConfig(**{**SMALL, "users": 20}, precoders=["mmse", "mf", "wl-mmse"])
    rows = sweep.run(cfg)
    assert len(rows) == 3 * 2 * 2
    assert all(np.isfinite(r["sum_rate"]) and r["sum_rate"] > 0 for r in rows)
    by = {(r["precoder"], r["iq"], r["snr_db"]): r["sum_rate"] for r in rows}
    assert by["mmse", "ideal", 20.0] > by["mmse", "ideal", 0.0]
    with pytest.raises(ValidationError, match="exceeds bs_antennas"):
        SweepConfig(**{**SMALL, "users": 20}, precoders=["mmse", "zf"])
