"""`foundry serve` and `foundry serve bench` from the command line."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys

import httpx
import pytest
from typer.testing import CliRunner

from foundry.cli import app
from tests.waiting import wait_until

runner = CliRunner()


def test_serve_help_lists_the_engine_limits() -> None:
    r = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    for opt in (
        "--model",
        "--policy",
        "--host",
        "--port",
        "--max-num-seqs",
        "--max-num-batched-tokens",
        "--block-size",
        "--num-device-blocks",
        "--max-model-len",
        "--max-waiting",
    ):
        assert opt in r.output, opt
    assert "bench" in r.output


def test_bench_in_process_json_is_the_only_stdout() -> None:
    r = runner.invoke(
        app,
        [
            "serve",
            "bench",
            "--in-process",
            "--num-requests",
            "4",
            "--rate",
            "inf",
            "--prompt-len",
            "8",
            "--output-len",
            "3",
            "--max-model-len",
            "64",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert result["num_completed"] == 4 and result["total_output_tokens"] == 12
    assert set(result["ttft_s"]) == {"mean", "p50", "p95", "p99"}
    assert result["info"]["rate"] is None  # --rate inf


def test_bench_table_output() -> None:
    r = runner.invoke(
        app,
        [
            "serve",
            "bench",
            "--in-process",
            "--num-requests",
            "3",
            "--rate",
            "50",
            "--prompt-len",
            "8",
            "--output-len",
            "3",
            "--max-model-len",
            "64",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "TTFT (ms)" in r.stdout and "3/3 completed" in r.stdout


def test_bench_over_http_against_a_running_server() -> None:
    from foundry.serve import EngineConfig, LLMEngine
    from foundry.serve.server import create_app, serve_in_thread

    server_app = create_app(LLMEngine(EngineConfig(max_model_len=64, num_device_blocks=32)))
    args = ["--num-requests", "3", "--rate", "20", "--prompt-len", "8", "--output-len", "4", "--json"]
    with serve_in_thread(server_app) as url:
        r = runner.invoke(app, ["serve", "bench", "--url", url, *args])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["num_completed"] == 3 and result["total_output_tokens"] == 12
    assert result["info"]["target"] == f"http {url}"


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["serve", "bench"], "--url"),
        (["serve", "bench", "--in-process", "--url", "http://127.0.0.1:1"], "--url"),
        (["serve", "bench", "--in-process", "--policy", "lifo"], "--policy"),
        (["serve", "bench", "--in-process", "--workload", "zipf"], "--workload"),
        (["serve", "bench", "--in-process", "--cv", "0"], "--cv"),
        (["serve", "bench", "--in-process", "--trace", "/nonexistent.csv"], "--trace"),
        (["serve", "bench", "--url", "http://127.0.0.1:9", "--num-requests", "1"], "--url"),
        (["serve", "bench", "--url", "http://127.0.0.1:9", "--wait", "0.3", "--num-requests", "1"], "--url"),
        # --port 0 for serve: its port is bound first, and 8000 may be taken on the machine running the tests
        (["serve", "--block-size", "0", "--port", "0"], "--block-size"),
        (["serve", "--log-level", "loud", "--port", "0"], "--log-level"),
        (["serve", "--model", "/nonexistent/checkpoint", "--port", "0"], "--model"),
    ],
)
def test_bad_options_exit_with_a_message_naming_the_option(args: list[str], option: str) -> None:
    r = runner.invoke(app, args)
    assert r.exit_code != 0
    assert option in r.output and "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)


def _one_clean_error(r, *names: str) -> None:
    assert r.exit_code != 0 and "Traceback" not in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    for name in names:
        assert name in r.output, (name, r.output)


def test_bench_fits_the_workload_to_the_servers_context() -> None:
    from foundry.serve import EngineConfig, LLMEngine
    from foundry.serve.server import create_app, serve_in_thread

    server_app = create_app(LLMEngine(EngineConfig(max_model_len=64, num_device_blocks=32)))
    # 40 + 40 tokens do not fit in 64: each request is cut to 32 + 32
    args = ["--num-requests", "3", "--rate", "inf", "--prompt-len", "40", "--output-len", "40", "--json"]
    with serve_in_thread(server_app) as url:
        r = runner.invoke(app, ["serve", "bench", "--url", url, *args])
    assert r.exit_code == 0, r.output
    assert "clipped 3 of 3 requests to the context of 64 tokens" in r.output
    result = json.loads(r.stdout)
    assert result["num_failed"] == 0 and result["total_output_tokens"] == 3 * 32
    assert result["info"]["max_model_len"] == 64 and result["info"]["num_clipped"] == 3


def test_bench_in_process_fits_the_workload_to_the_engines_context() -> None:
    args = ["serve", "bench", "--in-process", "--max-model-len", "32", "--num-requests", "2", "--rate", "inf",
            "--prompt-len", "40", "--output-len", "8", "--json"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "clipped 2 of 2 requests to the context of 32 tokens" in r.output
    result = json.loads(r.stdout)
    assert result["num_completed"] == 2 and result["total_prompt_tokens"] == 2 * 24
    assert result["total_output_tokens"] == 2 * 8


def test_bench_with_failed_requests_exits_non_zero_with_the_count_and_first_error() -> None:
    from foundry.serve import EngineConfig, LLMEngine
    from foundry.serve.server import create_app, serve_in_thread

    server_app = create_app(LLMEngine(EngineConfig(max_model_len=64, num_device_blocks=32)))
    args = ["--model", "not-served", "--num-requests", "2", "--rate", "inf", "--prompt-len", "4",
            "--output-len", "2"]
    with serve_in_thread(server_app) as url:
        table = runner.invoke(app, ["serve", "bench", "--url", url, *args])
        as_json = runner.invoke(app, ["serve", "bench", "--url", url, *args, "--json"])
    for r in (table, as_json):
        assert r.exit_code == 1, r.output
        _one_clean_error(r, "error: 2 of 2 requests failed; the first: HTTP 400", "'not-served'")
    assert json.loads(as_json.stdout)["num_failed"] == 2  # stdout stays the JSON result


def test_serve_on_a_taken_port_says_so_in_one_line_before_loading_anything() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = runner.invoke(app, ["serve", "--port", str(port)])
    assert r.exit_code == 1
    assert r.output.strip() == (f"error: port {port} on 127.0.0.1 is already in use; "
                                "pick another with --port")
    assert "serving" not in r.output


@pytest.mark.parametrize(
    ("config", "names"),
    [
        ({"model_type": "llama", "hidden_size": 64}, ["config.json", "missing field(s) vocab_size, inter"]),
        ({"model_type": "llama", "vocab_size": "many", "hidden_size": 64, "intermediate_size": 128,
          "num_hidden_layers": 2, "num_attention_heads": 4}, ["config.json", "vocab_size: expected a"]),
        ("{not json", ["config.json", "is not valid JSON"]),
        ([1, 2], ["config.json", "holds a JSON list"]),
        (None, ["has no config.json"]),
    ],
)
def test_serve_model_dir_with_a_bad_config_names_the_file_and_fields(tmp_path, config, names) -> None:
    if config is not None:
        text = config if isinstance(config, str) else json.dumps(config)
        (tmp_path / "config.json").write_text(text)
    # --port 0: the port is bound before the model loads, and any free one will do
    r = runner.invoke(app, ["serve", "--model", str(tmp_path), "--port", "0"])
    _one_clean_error(r, "--model", *names)
    assert "serving" not in r.output and "KeyError" not in r.output
    r = runner.invoke(app, ["serve", "--model", str(tmp_path / "missing"), "--port", "0"])
    _one_clean_error(r, "--model", "missing", "neither a built-in model")


def test_profile_writes_under_out_by_default(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["serve", "profile", "--prefill-lens", "8", "--decode-batches", "1",
                            "--repeats", "1", "--max-model-len", "64"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "profile.json").is_file() and "wrote out/profile.json" in r.output


def test_serve_answers_and_shuts_down_cleanly_on_sigterm() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "foundry.cli",
            "serve",
            "--port",
            "0",  # the OS picks a free port; the server says which
            "--max-model-len",
            "128",
            "--log-level",
            "info",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = []
        while not (match := re.search(r"serving .* on (http://127\.0\.0\.1:\d+)", seen[-1] if seen else "")):
            line = proc.stderr.readline()
            assert line, f"the server exited before saying where it serves: {''.join(seen)}"
            seen.append(line)
        url = match.group(1)

        def healthy() -> bool:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                return httpx.get(f"{url}/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(healthy), "server did not come up"
        r = httpx.post(
            f"{url}/v1/completions", json={"model": "foundry-tiny", "prompt": "hi", "max_tokens": 3}
        )
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] >= 1
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0  # graceful: lifespan shutdown stopped the engine thread
        assert "Application shutdown complete" in out + err and "Traceback" not in out + err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
