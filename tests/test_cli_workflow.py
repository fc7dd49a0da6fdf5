"""`liquidnets train / evaluate / predict` on the example data, and every bad input as one
line and a non-zero exit."""

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("lightning")
pytest.importorskip("pandas")
click_testing = pytest.importorskip("click.testing")

from liquidnets.cli import build_cli  # noqa: E402

EXAMPLE = Path(__file__).parents[1] / "examples" / "sensor_readings.csv"
FAST = ["--lookback", "16", "--units", "8", "--max-epochs", "3", "--patience", "2"]


def invoke(*args):
    return click_testing.CliRunner().invoke(build_cli(), [str(a) for a in args])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "co2"
    base = ["train", "--data", EXAMPLE, "--time", "time", "--target", "co2_ppm", "--horizon", "2"]
    result = invoke(*base, *FAST, "--out", out)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_train_writes_the_run_folder_and_prints_the_table_with_baselines(run_dir):
    out, printed = run_dir
    for name in ("config.json", "metrics.json", "metrics.md", "logs/metrics.csv"):
        assert (out / name).is_file(), name
    # the readings are 16 minutes apart: the season (a day, 90 readings) comes from the
    # timestamps, and the seasonal naive forecast joins the baselines
    for name in ("cfc", "naive", "seasonal_naive", "lstm", "gru"):
        assert (out / "models" / name / "model.safetensors").is_file()
        assert f"| {name} |" in printed
    for name in ("forecast.png", "residuals.png", "training.png"):
        assert (out / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((out / "config.json").read_text())
    assert config["lookback"] == 16 and config["train"]["max_epochs"] == 3  # resolved options
    assert config["season"] == 90 and config["base"] == [False, False]  # 90 > lookback 16
    rows = json.loads((out / "metrics.json").read_text())["rows"]
    assert {r["model"] for r in rows} == {"cfc", "naive", "seasonal_naive", "lstm", "gru"}
    assert all(r["mae"] > 0 for r in rows)


def test_evaluate_reproduces_the_metrics_and_prints_json(run_dir):
    out, _ = run_dir
    rows = json.loads((out / "metrics.json").read_text())["rows"]
    result = invoke("evaluate", out, "--data", EXAMPLE, "--json")
    assert result.exit_code == 0, result.output
    again = json.loads(result.output)["rows"]
    for a, b in zip(rows, again, strict=True):
        assert a["model"] == b["model"] and a["mae"] == pytest.approx(b["mae"], rel=1e-5)


def test_predict_writes_the_next_horizon(run_dir, tmp_path):
    import pandas as pd

    out, _ = run_dir
    target = tmp_path / "forecast.csv"
    result = invoke("predict", out, "--data", EXAMPLE, "--out", target)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(target)
    assert list(frame["step"]) == [1, 2] and "co2_ppm" in frame
    assert pd.to_datetime(frame["time"]).iloc[0] > pd.Timestamp("2015-02-10 09:19:00")
    again = invoke("predict", out, "--data", EXAMPLE, "--out", target)
    assert again.exit_code != 0 and "--overwrite" in again.output


def test_a_run_folder_is_never_overwritten_without_the_flag(run_dir):
    out, _ = run_dir
    before = (out / "metrics.json").read_text()
    result = invoke(
        "train", "--data", EXAMPLE, "--time", "time", "--target", "co2_ppm", "--out", out, *FAST
    )
    assert result.exit_code != 0 and "--overwrite" in result.output
    assert (out / "metrics.json").read_text() == before


def test_options_come_from_a_toml_file_and_flags_win(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(
        f'data = "{EXAMPLE}"\ntime = "time"\ntarget = "co2_ppm"\nlookback = 12\nunits = 8\n'
        f'max-epochs = 2\nmodel = "ltc"\nbaselines = false\nout = "{tmp_path / "run"}"\n'
    )
    result = invoke("train", "--config", config, "--lookback", "10")
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "run" / "config.json").read_text())
    assert settings["model"] == "ltc" and settings["lookback"] == 10  # the flag won
    assert sorted(p.name for p in (tmp_path / "run" / "models").iterdir()) == ["ltc"]
    bad = tmp_path / "bad.toml"
    bad.write_text("lookbak = 3\n")
    result = invoke("train", "--config", bad)
    assert result.exit_code != 0 and "unknown keys lookbak" in result.output


@pytest.mark.parametrize("command", ["train", "evaluate", "predict"])
def test_every_help_shows_an_example(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0 and "Example:" in result.output
    assert f"liquidnets {command} " in result.output


def write(tmp_path, text, name="data.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


GOOD = "time,temp,co2\n" + "".join(
    f"2020-01-01 00:{m:02d}:00,{20 + m / 10},{400 + m}\n" for m in range(40)
)


@pytest.mark.parametrize(
    ("case", "make", "args", "expected"),
    [
        ("missing file", lambda p: p / "nope.csv", [], "no such file"),
        ("empty file", lambda p: write(p, ""), [], "empty"),
        ("misspelled column", lambda p: write(p, GOOD), ["--target", "co3"], "did you mean 'co2'"),
        (
            "non-numeric value",
            lambda p: write(p, GOOD.replace(",403\n", ",4o3\n")),
            [],
            "'4o3'",
        ),
        (
            "unsorted timestamps",
            lambda p: write(p, GOOD.replace("00:05:00", "00:59:00")),
            [],
            "time goes backwards",
        ),
        (
            "duplicate timestamps",
            lambda p: write(p, GOOD.replace("00:05:00", "00:04:00")),
            [],
            "duplicate",
        ),
        ("fewer rows than a window", lambda p: write(p, GOOD), ["--lookback", "60"], "window"),
        ("NaN without a policy", lambda p: write(p, GOOD.replace(",403\n", ",\n")), [], "missing"),
        ("inf", lambda p: write(p, GOOD.replace(",403\n", ",inf\n")), [], "inf"),
        (
            "wrong encoding",
            lambda p: write(p, GOOD.replace("temp", "température"), encoding="latin-1"),
            ["--features", "température"],
            "utf-8",
        ),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(tmp_path, case, make, args, expected):
    path = make(tmp_path)
    options = {"--target": "co2", "--time": "time", "--lookback": "8"}
    for flag, value in zip(args[::2], args[1::2]):
        options[flag] = value
    flat = [x for kv in options.items() for x in kv]
    result = invoke("train", "--data", path, *flat, "--max-epochs", "1", "--out", tmp_path / "r")
    assert result.exit_code != 0, (case, result.output)
    lines = [ln for ln in result.output.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("Error: "), (case, result.output)
    assert expected.lower() in lines[0].lower(), (case, lines[0])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "r").exists()


def test_the_example_project_trains_and_evaluates(tmp_path):
    import subprocess
    import sys

    project = tmp_path / "sensor_project"
    shutil.copytree(Path(__file__).parents[1] / "examples" / "sensor_project", project)
    env_src = str(Path(__file__).parents[1] / "src")
    env = {"PYTHONPATH": env_src, "PATH": "/usr/bin:/bin"}
    for script, args in (("train.py", ["--max-epochs", "3"]), ("evaluate.py", [])):
        done = subprocess.run(
            [sys.executable, script, *args], cwd=project, env=env, capture_output=True,
            text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
    assert "| ltc |" in done.stdout and "| naive |" in done.stdout
    assert (project / "forecast.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
