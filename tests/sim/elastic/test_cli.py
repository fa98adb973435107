"""`foundry sim serve --system`: a run's report with the dataset's SLO score; bad values name the option;
without --system the command is unchanged (tests/sim/test_cli.py)."""

import json

import pytest
from typer.testing import CliRunner

from foundry.cli import app

runner = CliRunner()


@pytest.mark.parametrize("system", ["loongserve", "splitfuse", "disagg", "static-sp", "vllm"])
def test_system_runs_and_reports_the_slo(system):
    r = runner.invoke(app, ["sim", "serve", "--system", system, "--dataset", "leval", "--rate", "1",
                            "--num-requests", "8", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["num_completed"] == 8 and d["info"]["dataset"] == "leval"
    assert d["info"]["slo"]["per_token_slo_s"] == 0.0035 and d["info"]["slo"]["score"] > 0


def test_table_and_zipf_attainment():
    r = runner.invoke(app, ["sim", "serve", "--system", "loongserve", "--dataset", "zipf-1.4", "--rate", "2",
                            "--num-requests", "10"])
    assert r.exit_code == 0, r.output
    assert "10/10 completed" in r.output and "within the Zipf TTFT/TPOT SLO" in r.output


@pytest.mark.parametrize("args,hint", [(["--system", "orca"], "--system"),
                                       (["--system", "vllm", "--dataset", "books"], "--dataset"),
                                       (["--system", "vllm", "--rate", "0"], "--rate")])
def test_bad_values_name_the_option(args, hint):
    r = runner.invoke(app, ["sim", "serve", "--num-requests", "3", *args])
    assert r.exit_code != 0 and hint in r.output and "Traceback" not in r.output, r.output
