"""`foundry rl train / plot`: a run writes its JSONL log, TensorBoard scalars and checkpoint, resumes,
plots; bad options exit with a message naming the option."""

import json

from typer.testing import CliRunner

from foundry.cli import app

runner = CliRunner()
TINY = ["--backend", "local", "--hidden", "32", "--layers", "1", "--sft-steps", "20", "--prompts-per-step",
        "3", "--n", "2", "--eval-prompts", "3", "--max-batch", "6", "--task", "reverse"]


def test_train_log_tensorboard_checkpoint_resume_and_plot(tmp_path):
    log, out, tb = tmp_path / "logs" / "run.jsonl", tmp_path / "run", tmp_path / "tb"
    r = runner.invoke(app, ["rl", "train", *TINY, "--mode", "async", "--steps", "2", "--log", str(log),
                            "--tensorboard", str(tb), "--out", str(out)])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output.strip().splitlines()[-1])
    assert summary["mode"] == "async" and summary["steps"] == 2 and summary["staleness_max"] == 1
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [row["step"] for row in rows] == [0, 1]
    assert {"step", "reward", "samples_per_s", "staleness_max", "ranker_recall"} <= set(rows[0])
    assert list(tb.glob("events.out.tfevents.*"))
    assert (out / "trainer.pt").is_file() and (out / "policy.pt").is_file()
    r = runner.invoke(app, ["rl", "train", "--out", str(out), "--resume", "--steps", "3", "--log", str(log)])
    assert r.exit_code == 0, r.output
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [0, 1, 2]
    r = runner.invoke(app, ["rl", "plot", str(log), "--out", str(tmp_path / "fig" / "rl.png")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "fig" / "rl.png").stat().st_size > 1000


def test_bad_options_name_the_option(tmp_path):
    r = runner.invoke(app, ["rl", "train", "--mode", "fast"])
    assert r.exit_code != 0 and "--mode" in r.output
    r = runner.invoke(app, ["rl", "train", "--task", "sudoku"])
    assert r.exit_code != 0 and "--task" in r.output and "rle" in r.output
    r = runner.invoke(app, ["rl", "train", "--resume"])
    assert r.exit_code != 0 and "--out" in r.output
    r = runner.invoke(app, ["rl", "train", "--resume", "--out", str(tmp_path)])
    assert r.exit_code != 0 and "holds no checkpoint" in r.output
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    r = runner.invoke(app, ["rl", "train", "--init", str(bad)])
    assert r.exit_code != 0 and "--init" in r.output
    notlog = tmp_path / "n.jsonl"
    notlog.write_text('{"a": 1}\n')
    r = runner.invoke(app, ["rl", "plot", str(notlog)])
    assert r.exit_code != 0 and "not a `foundry rl train --log` file" in r.output
