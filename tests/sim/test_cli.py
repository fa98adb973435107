"""`foundry sim`: serve prints the benchmark report (JSON too), sweep writes CSV + PNG, fit prints its
error, and bad options exit with a message naming the option."""

import csv
import json

import pytest
from typer.testing import CliRunner

from foundry.cli import app
from foundry.sim.cost_models import published_cost_model
from foundry.sim.cost_models.fitted import samples_to_json

runner = CliRunner()


def test_serve_json_is_the_bench_report():
    r = runner.invoke(app, ["sim", "serve", "--policy", "sj-mlfq", "--workload", "pareto", "--rate", "4",
                            "--num-requests", "80", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["num_completed"] == 80 and d["e2e_s"]["mean"] > 0 and d["info"]["cost"] == "opt-13b-a100"
    assert d["info"]["simulator"]["num_steps"] > 0


def test_serve_instances_report_per_instance_and_cluster_figures():
    r = runner.invoke(app, ["sim", "serve", "--policy", "vllm", "--rate", "8", "--num-requests", "40",
                            "--instances", "2", "--dispatch", "least-loaded", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    inst = d["info"]["simulator"]["instances"]
    info = d["info"]
    assert d["num_completed"] == 40 and (info["num_instances"], info["dispatch"]) == (2, "least-loaded")
    assert sum(i["num_requests"] for i in inst) == 40
    assert sum(i["num_steps"] for i in inst) == d["info"]["simulator"]["num_steps"]
    r = runner.invoke(app, ["sim", "serve", "--num-requests", "5", "--instances", "2"])
    assert r.exit_code == 0 and "instance 1:" in r.output, r.output
    r = runner.invoke(app, ["sim", "serve", "--num-requests", "5", "--dispatch", "random"])
    assert r.exit_code != 0 and "--dispatch" in r.output, r.output


def test_serve_roofline_table():
    r = runner.invoke(app, ["sim", "serve", "--cost", "roofline:h100:llama-3-8b", "--num-requests", "30"])
    assert r.exit_code == 0, r.output
    assert "JCT" in r.output and "30/30 completed" in r.output


def test_bad_options_name_the_option():
    cases = ((["--cost", "tpu:x"], "--cost"), (["--cost", "roofline:h100:gpt-9"], "--cost"),
             (["--policy", "lifo"], "--policy"), (["--mlfq-base-quantum", "soon"], "--mlfq-base-quantum"),
             (["--policy", "mlfq", "--mlfq-memory-mode", "magic"], "--mlfq-memory-mode"),
             (["--policy", "mlfq", "--mlfq-starvation-hold", "forever"], "--mlfq-starvation-hold"),
             (["--cost", "fitted:/nonexistent.json"], "--cost"), (["--workload", "zipf"], "--workload"))
    for args, hint in cases:
        r = runner.invoke(app, ["sim", "serve", "--num-requests", "5", *args])
        assert r.exit_code != 0 and hint in r.output, (args, r.output)
        assert "Traceback" not in r.output


def test_starvation_hold_option_reaches_the_policy():
    runs = {}
    for hold in ("off", "finish"):
        r = runner.invoke(app, ["sim", "serve", "--policy", "mlfq", "--workload", "pareto", "--rate", "6",
                                "--num-requests", "200", "--mlfq-starvation-threshold", "0.5",
                                "--mlfq-starvation-hold", hold, "--json"])
        assert r.exit_code == 0, r.output
        runs[hold] = r.output
    assert runs["off"] != runs["finish"]  # the rule changes the schedule under starvation


def test_sweep_writes_csv_and_png(tmp_path):
    r = runner.invoke(app, ["sim", "sweep", "--output-dir", str(tmp_path), "--policies", "fcfs,sj-mlfq",
                            "--rates", "2,4", "--num-requests", "60"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader((tmp_path / "sweep.csv").open()))
    assert [(x["policy"], float(x["rate"])) for x in rows] == [("fcfs", 2), ("sj-mlfq", 2), ("fcfs", 4),
                                                                 ("sj-mlfq", 4)]
    assert (tmp_path / "sweep.png").stat().st_size > 10_000
    r = runner.invoke(app, ["sim", "sweep", "--output-dir", str(tmp_path), "--rates", "1,x"])
    assert r.exit_code != 0 and "--rates" in r.output


def test_fit_prints_the_error_and_the_model_serves(tmp_path):
    from foundry.sim.batch import decode_features, prefill_features

    truth = published_cost_model("opt-13b-a100")
    feats = [prefill_features(n) for n in (16, 64, 256, 1024, 2048)]
    feats += [decode_features(b, 300) for b in (1, 4, 16)]
    feats += [decode_features(b, 900) for b in (2, 8, 32)]
    d = samples_to_json([(f, truth.predict(f)) for f in feats], {"num_device_blocks": 500, "block_size": 16})
    (tmp_path / "s.json").write_text(json.dumps(d))
    r = runner.invoke(app, ["sim", "fit", str(tmp_path / "s.json"), "--output", str(tmp_path / "m.json")])
    assert r.exit_code == 0, r.output
    assert "mean |rel. error|" in r.output and (tmp_path / "m.json").is_file()
    r = runner.invoke(app, ["sim", "serve", "--cost", f"fitted:{tmp_path / 'm.json'}", "--num-requests", "20",
                            "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["info"]["num_device_blocks"] == 500


def test_trace_replay_with_time_scaling(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0.0,100,10\n2.0,200,5\n4.0,50,8\n")
    base = ["sim", "serve", "--trace", str(trace), "--trace-arrivals", "--num-requests", "3", "--json"]
    slow = json.loads(runner.invoke(app, base).output)
    fast = json.loads(runner.invoke(app, [*base, "--time-scale", "4"]).output)
    assert slow["num_completed"] == fast["num_completed"] == 3
    assert slow["total_output_tokens"] == 23 and slow["total_prompt_tokens"] == 350
    # arrivals 2 s apart, each request served in well under 1 s: the makespan is the last arrival
    # (4 s, or 1 s at 4x) plus that request's own JCT, the same in both runs
    assert slow["duration_s"] - fast["duration_s"] == pytest.approx(3.0)


def _one_clean_error(r, *names: str) -> None:
    assert r.exit_code != 0 and "Traceback" not in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    for name in names:
        assert name in r.output, (name, r.output)


def test_fit_on_a_file_that_is_not_json_names_it_and_what_was_expected(tmp_path):
    data = tmp_path / "train.h5"
    data.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)))
    r = runner.invoke(app, ["sim", "fit", str(data), "--output", str(tmp_path / "m.json")])
    _one_clean_error(r, "SOURCE", str(data), "not a JSON file", "foundry serve profile")
    (tmp_path / "few.json").write_text(json.dumps({"kind": "step-samples", "samples": [[1, 8, 64, 0, 0]]}))
    r = runner.invoke(app, ["sim", "fit", str(tmp_path / "few.json"), "--output", str(tmp_path / "m.json")])
    _one_clean_error(r, "SOURCE", "few.json")
    assert not (tmp_path / "m.json").exists()


def test_fitted_cost_without_a_pool_says_which_options_to_give(tmp_path):
    model = tmp_path / "m.json"
    published_cost_model("opt-13b-a100").save(model)  # coefficients only: no engine pool in its meta
    r = runner.invoke(app, ["sim", "serve", "--cost", f"fitted:{model}", "--num-requests", "5"])
    _one_clean_error(r, "Invalid value for --num-device-blocks", "give it with --num-device-blocks N")
    assert r.output.rstrip().endswith(")")  # the whole sentence, not cut off


def test_sweep_blames_the_policies_option(tmp_path):
    for policies in ("fcfs,bogus", ","):
        r = runner.invoke(app, ["sim", "sweep", "--output-dir", str(tmp_path), "--policies", policies,
                                "--rates", "1", "--num-requests", "5"])
        _one_clean_error(r, "Invalid value for --policies")
    assert "'bogus'" in runner.invoke(app, ["sim", "sweep", "--output-dir", str(tmp_path), "--policies",
                                            "fcfs,bogus"]).output
    assert not (tmp_path / "sweep.csv").exists()


def test_a_binary_trace_names_the_option_and_the_columns(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_bytes(bytes(range(128, 256)))
    r = runner.invoke(app, ["sim", "serve", "--trace", str(trace), "--num-requests", "5"])
    _one_clean_error(r, "--trace", str(trace), "not a CSV text file", "num_prefill_tokens")
