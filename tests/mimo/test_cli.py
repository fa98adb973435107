import json

from typer.testing import CliRunner

from foundry.cli import app

runner = CliRunner()
BASE = ["mimo", "sweep", "--bs-antennas", "16", "--users", "4", "--snr-db", "0,30", "--draws", "10"]


def test_json_rows_on_stdout_only(tmp_path):
    res = runner.invoke(app, [*BASE, "--precoders", "zf,wl-zf", "--json", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == 2 * 2 * 2
    assert set(rows[0]) >= {"precoder", "iq", "snr_db", "sum_rate"}
    assert {r["iq"] for r in rows} == {"ideal", "iqi"}
    assert (tmp_path / "sweep.csv").exists() and (tmp_path / "sweep.png").exists()


def test_table_and_config_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("bs_antennas: 16\nusers: 4\nsnr_db: [0, 10]\ndraws: 6\nprecoders: [mmse, wl-mmse]\n")
    res = runner.invoke(app, ["mimo", "sweep", "--config", str(cfg), "--draws", "4", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert {r["precoder"] for r in rows} == {"mmse", "wl-mmse"} and len(rows) == 8
    res = runner.invoke(app, [*BASE, "--precoders", "mf"])
    assert res.exit_code == 0 and "sum rate" in res.stdout and "mf" in res.stdout


def test_errors_name_the_option(tmp_path):
    def err(*args):
        res = runner.invoke(app, ["mimo", "sweep", *args], env={"COLUMNS": "400"})
        assert res.exit_code == 2, res.output
        return " ".join(res.output.replace("│", " ").split())  # unwrap rich's error box

    assert "--draws" in err("--draws", "-1")
    msg = err("--precoders", "zf,foo")
    assert "--precoders" in msg and "foo" in msg and "wl-bd" in msg
    assert "exceeds bs_antennas" in err("--bs-antennas", "8", "--users", "4", "--user-antennas", "4")
    assert "--sigma-g" in err("--sigma-g", "2")
    assert "--sigma-theta-deg" in err("--sigma-theta-deg", "90")
    assert "--snr-db" in err("--snr-db", "0,ten")
    assert "--config" in err("--config", str(tmp_path / "missing.yaml"))
    (tmp_path / "bad.json").write_text('{"draws": 0}')
    msg = err("--config", str(tmp_path / "bad.json"))
    assert "--draws" in msg and "--config" in msg


def test_figures(tmp_path):
    res = runner.invoke(app, ["mimo", "figures", "--out", str(tmp_path), "--draws", "4"])
    assert res.exit_code == 0, res.output
    for stem in ("sum_rate", "bd", "ber", "power_loss"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 10_000
        assert (tmp_path / f"{stem}.csv").read_text().count("\n") > 5
    assert runner.invoke(app, ["mimo", "figures", "--out", str(tmp_path), "--draws", "1"]).exit_code == 2


def test_multi_antenna_users_with_correlation():
    args = ["mimo", "sweep", "--bs-antennas", "12", "--users", "3", "--user-antennas", "2", "--draws", "5"]
    args += [
        "--snr-db",
        "10",
        "--precoders",
        "bd,wl-bd",
        "--tx-correlation",
        "0.5",
        "--rx-correlation",
        "0.3",
    ]
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    rows = {(r["precoder"], r["iq"]): r["sum_rate"] for r in json.loads(res.stdout)}
    assert abs(rows["wl-bd", "ideal"] - rows["bd", "ideal"]) < 1e-9
    assert rows["wl-bd", "iqi"] > rows["bd", "iqi"]
