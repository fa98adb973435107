"""The latency profile: interpolation, file round trip, errors, and a real measurement of a tiny engine."""

import json

import pytest
from typer.testing import CliRunner

from foundry.serve.profile import REFERENCE_DECODE_STEP_S, Profile, measure_profile, scaled_base_quantum


def test_prefill_time_interpolates_and_extrapolates_linearly():
    p = Profile([10, 20, 40], [0.010, 0.020, 0.060])
    assert p.prefill_time(10) == pytest.approx(0.010) and p.prefill_time(40) == pytest.approx(0.060)
    assert p.prefill_time(15) == pytest.approx(0.015) and p.prefill_time(30) == pytest.approx(0.040)
    assert p.prefill_time(60) == pytest.approx(0.100)  # last slope 2 ms/token beyond the last point
    assert p.prefill_time(1) == pytest.approx(0.010)  # clamped below the first point


def test_scaled_base_quantum_keeps_the_papers_quantum_to_step_ratio():
    p = Profile([8], [0.001], [1, 4], [0.004, 0.008])
    assert scaled_base_quantum(p) == pytest.approx(0.010 * 0.004 / REFERENCE_DECODE_STEP_S)
    assert p.decode_step_time(2) == pytest.approx(0.004 + 0.004 / 3)
    with pytest.raises(ValueError, match="decode_times"):
        Profile([8], [0.001]).decode_step_time(1)


def test_round_trip_and_bad_files(tmp_path):
    p = Profile([8, 16], [0.001, 0.002], [1], [0.003], {"model": "x"})
    path = tmp_path / "p.json"
    p.save(path)
    assert Profile.load(path) == p
    with pytest.raises(ValueError, match="profile: no such file"):
        Profile.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text(json.dumps({"lens": [1]}))
    with pytest.raises(ValueError, match="profile: .* not a profile"):
        Profile.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="prefill_lens"):
        Profile([16, 8], [0.001, 0.002])
    with pytest.raises(ValueError, match="prefill_times"):
        Profile([8], [0.0])


def test_measure_profile_of_a_real_engine(make_engine):
    engine = make_engine(policy="fcfs", max_num_seqs=4, max_num_batched_tokens=64, num_device_blocks=64)
    prof = measure_profile(engine, prefill_lens=(4, 32, 100, 300), decode_batches=(1, 2, 8), repeats=1,
                           decode_steps=4)
    assert prof.prefill_lens == [4, 32, 100]  # 300 does not fit the 256-token context
    assert prof.decode_batches == [1, 2]  # batch 8 > max_num_seqs
    assert all(t > 0 for t in prof.prefill_times + prof.decode_times)
    assert prof.meta["max_num_batched_tokens"] == 64
    # a 100-token prompt over a 64-token budget takes two steps, both counted
    assert not engine.has_unfinished_requests() and engine.block_manager.num_free_device_blocks == 64
    with pytest.raises(ValueError, match="prefill_lens"):
        measure_profile(engine, prefill_lens=(1000,))


def test_profile_cli_writes_a_loadable_file(tiny_ckpt, tmp_path):
    from foundry.cli import app

    out = tmp_path / "prof.json"
    args = ["serve", "profile", "--model", tiny_ckpt, "--output", str(out), "--prefill-lens", "8,32",
            "--decode-batches", "1,2", "--repeats", "1"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert Profile.load(out).prefill_lens == [8, 32] and "mlfq-base-quantum auto" in r.output
    r = CliRunner().invoke(app, [*args[:6], "--prefill-lens", "8,x"])
    assert r.exit_code != 0 and "--prefill-lens" in r.output
