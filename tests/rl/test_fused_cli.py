"""`foundry rl schedule`: prints the search's numbers, writes the Gantt chart, and names the bad option."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from foundry.cli import app

runner = CliRunner()
SMALL = ["rl", "schedule", "--pp", "4/2", "--micro-batches", "4/3", "--fwd-time", "3/2", "--budget-s", "0.2"]


def test_schedule_prints_numbers_and_writes_the_gantt(tmp_path):
    out = tmp_path / "fig" / "gantt.png"
    r = runner.invoke(app, [*SMALL, "--json", "--out", str(out), "--memory-cap", "6"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.output.strip().splitlines()[0])
    assert row["seq_1f1b_makespan"] == (4 + 4 - 1) * 9 + (3 + 2 - 1) * 6
    assert row["lower_bound"] <= row["makespan"] <= row["greedy_makespan"] < row["seq_1f1b_makespan"]
    assert row["peak_memory"] <= 6 and row["memory_cap_met"] is True and 0 < row["bubble"] < 1
    assert out.stat().st_size > 5000 and out.read_bytes()[:4] == b"\x89PNG"
    r = runner.invoke(app, SMALL)
    assert r.exit_code == 0, r.output
    assert "makespan" in r.output and "seq 1F1B 87" in r.output and "peak memory" in r.output


def test_schedule_reports_an_unreachable_memory_cap():
    r = runner.invoke(app, [*SMALL, "--budget-s", "0.1", "--memory-cap", "1"])
    assert r.exit_code == 1 and "--memory-cap 1 cannot be met" in r.output


@pytest.mark.parametrize(("args", "option"), [
    (["--pp", "8"], "--pp"),
    (["--pp", "8/3"], "--pp"),
    (["--micro-batches", "x"], "--micro-batches"),
    (["--fwd-time", "5/0"], "--fwd-time"),
    (["--bwd-time", "5/5"], "--bwd-time"),
])
def test_bad_input_names_the_option(args, option):
    base = {"--pp": "4/2", "--micro-batches": "4/3", "--fwd-time": "3/2"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    r = runner.invoke(app, ["rl", "schedule", *[x for kv in base.items() for x in kv]])
    assert r.exit_code == 2 and option in r.output
    assert "Invalid value" in r.output and "Traceback" not in r.output
