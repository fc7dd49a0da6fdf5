"""The README is executable: its python blocks run, its commands are the real ones."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def code_blocks(lang: str) -> list[str]:
    return [body for kind, body in FENCE.findall(README.read_text("utf-8")) if kind == lang]


def section(heading: str) -> str:
    text = README.read_text("utf-8")
    match = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README has no '## {heading}' section"
    return match.group(1)


def test_python_blocks_execute(tmp_path, monkeypatch):
    blocks = code_blocks("python")
    assert blocks, "README has no ```python blocks"
    monkeypatch.chdir(tmp_path)  # anything a block writes lands in a temporary folder
    shutil.copytree(ROOT / "examples", tmp_path / "examples")  # paths as in the repository
    namespace: dict = {"__name__": "__readme__"}
    for i, block in enumerate(blocks, 1):
        code = compile(block, f"README.md python block {i}", "exec")
        exec(code, namespace)


def test_quick_start_commands():
    blocks = [b for kind, b in FENCE.findall(section("Quick start")) if kind in ("bash", "sh")]
    commands = [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert commands == ["./dev demo", "./dev test"]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    lines = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.startswith("#")]
    assert any(re.match(r"^(exec\s+)?\./dev test\b", ln) for ln in lines), ci
    for script in (ROOT / "dev", ROOT / ".ci" / "run"):
        assert os.access(script, os.X_OK), f"{script} is not executable"


WORKFLOW = "From a CSV of sensor readings to a trained model"


def workflow_commands() -> tuple[list[list[str]], list[list[str]]]:
    """The `liquidnets` commands of the workflow section: those to run here, and those of the
    multi-GPU part (checked against the options, not run: there is no GPU here)."""
    text = section(WORKFLOW)
    local, gpu = text.split("### Training on several GPUs or machines")
    parse = lambda part: [  # noqa: E731
        shlex.split(line)
        for kind, body in FENCE.findall(part)
        if kind == "bash"
        for line in body.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return parse(local), parse(gpu)


def test_workflow_commands_run(tmp_path, monkeypatch):
    pytest.importorskip("lightning")
    from click.testing import CliRunner

    from liquidnets.cli import build_cli

    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    local, _ = workflow_commands()
    assert [c[:2] for c in local] == [
        ["liquidnets", "train"],
        ["liquidnets", "evaluate"],
        ["liquidnets", "predict"],
        ["liquidnets", "train"],
        ["liquidnets", "train"],
        ["liquidnets", "train"],
    ]
    for command in local:
        result = CliRunner().invoke(build_cli(), command[1:])
        assert result.exit_code == 0, (command, result.output)
    assert (tmp_path / "runs" / "co2" / "plots" / "forecast.png").is_file()
    assert (tmp_path / "runs" / "co2-forecast.csv").is_file()
    toml = (tmp_path / "runs" / "co2-toml" / "config.json").read_text()
    assert '"max_epochs": 30' in toml  # the flag over the file's 100
    anomalies = tmp_path / "runs" / "co2-anomalies"
    assert (anomalies / "plots" / "anomalies.png").is_file()
    assert json.loads((anomalies / "config.json").read_text())["task"] == "anomaly"
    water = json.loads((tmp_path / "runs" / "water-anomalies" / "config.json").read_text())
    assert water["train_until"] == "2022-04-18"


def test_multi_gpu_commands_use_real_options():
    import click

    from liquidnets.cli import build_cli

    _, gpu = workflow_commands()
    assert gpu
    train = build_cli().commands["train"]
    for command in gpu:
        args = [a for a in command if "=" not in a or a.startswith("-")]
        args = args[args.index("liquidnets") + 2 :]
        ctx = train.make_context("train", args, resilient_parsing=True)
        assert ctx.params["strategy"] == "ddp" and ctx.params["devices"] == "4"
        assert isinstance(ctx, click.Context)


def section_commands(heading: str) -> list[list[str]]:
    """The command lines of the bash blocks of a README section, split like a shell."""
    return [
        shlex.split(line)
        for kind, body in FENCE.findall(section(heading))
        if kind == "bash"
        for line in body.splitlines()
        if line.strip() and not line.startswith("#")
    ]


def run_section_commands(heading: str, tmp_path, monkeypatch) -> list:
    """Train the workflow's CO2 run briefly (the run the section's commands use), then run
    the section's commands in a folder holding the examples; their results."""
    from click.testing import CliRunner

    from liquidnets.cli import build_cli

    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    train = shlex.split(
        "train --data examples/sensor_readings.csv --time time --target co2_ppm --horizon 4 "
        "--max-epochs 2 --no-baselines --base last --no-linear --out runs/co2"
    )
    cli = build_cli()
    assert CliRunner().invoke(cli, train).exit_code == 0
    results = []
    for command in section_commands(heading):
        result = CliRunner().invoke(cli, command[1:])
        assert result.exit_code == 0, (command, result.output)
        results.append(result)
    return results


def test_adaptation_command_runs(tmp_path, monkeypatch):
    pytest.importorskip("lightning")
    heading = "Adapting after deployment"
    assert [c[:2] for c in section_commands(heading)] == [["liquidnets", "stream"]]
    for result in run_section_commands(heading, tmp_path, monkeypatch):
        assert "mean absolute one-step error: adaptive" in result.output
    assert (tmp_path / "runs" / "co2-stream.csv").is_file()


def test_deployment_commands_run(tmp_path, monkeypatch):
    pytest.importorskip("lightning")
    pytest.importorskip("onnxruntime")
    from liquidnets import runtime

    heading = "Deploying to a device"
    assert [c[:2] for c in section_commands(heading)] == [["liquidnets", "export"]] * 3
    run_section_commands(heading, tmp_path, monkeypatch)
    for name in ("co2.onnx", "co2-int8.npz", "co2-window.onnx"):
        model = runtime.load(tmp_path / "runs" / name)
        assert model.meta["targets"] == ["co2_ppm"] and model.output_size == 4
    assert model.window == 32  # the run's lookback


def test_classification_command_runs(tmp_path, monkeypatch):
    pytest.importorskip("lightning")
    import numpy as np
    import pandas as pd
    from click.testing import CliRunner

    from liquidnets.cli import build_cli

    (command,) = section_commands("Classification quality")
    assert command[:2] == ["liquidnets", "train"] and "--split-column" in command
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    frames = []
    for k in range(30):  # the file the command names: gestures of two kinds
        t = np.arange(rng.integers(20, 61))
        kind = ["slow", "fast"][k % 2]
        z = np.sin(t * (0.3 if kind == "slow" else 1.0) + rng.uniform(0, 6))
        split = "test" if k >= 20 else "train"
        frames.append(pd.DataFrame({"gesture": k, "t": t, "z": z, "kind": kind, "split": split}))
    pd.concat(frames).to_csv("gestures.csv", index=False)
    result = CliRunner().invoke(build_cli(), [*command[1:], "--max-epochs", "2"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "runs" / "gestures" / "metrics.json").read_text())
    assert {r["model"] for r in metrics["rows"]} == {"cfc", "naive", "lstm", "gru"}


KILLED = """
import os, signal, sys
import lightning
from lightning.pytorch.callbacks import Callback
from liquidnets.deploy.stream import StreamPredictor

class Kill(Callback):  # the machine going down after the second epoch
    def on_train_epoch_end(self, trainer, module):
        if trainer.current_epoch >= 1:
            os.kill(os.getpid(), signal.SIGKILL)

original = lightning.Trainer.__init__
def with_kill(self, *args, **kwargs):
    kwargs["callbacks"] = [*kwargs.get("callbacks", []), Kill()]
    original(self, *args, **kwargs)
lightning.Trainer.__init__ = with_kill
step, taken = StreamPredictor.update_many, []
def update_many(self, *args, **kwargs):  # ... or after 250 readings of a replay
    out = step(self, *args, **kwargs)
    taken.extend([1] if self.config.policy != "off" else [])  # the adapting one's readings
    if len(taken) >= 250:
        os.kill(os.getpid(), signal.SIGKILL)
    return out
StreamPredictor.update_many = update_many
from liquidnets.cli import main
main(sys.argv[1:])
"""


def test_nothing_lost_commands_run(tmp_path, monkeypatch):
    """The section's commands, each first one killed as a crash would kill it."""
    pytest.importorskip("lightning")
    import subprocess
    import sys

    import pandas as pd
    from click.testing import CliRunner

    from liquidnets.cli import build_cli

    commands = section_commands("Nothing lost, nothing silently wrong")
    assert [c[:2] for c in commands] == [["liquidnets", "train"]] * 2 + [
        ["liquidnets", "clean"], ["liquidnets", "stream"], ["liquidnets", "stream"]
    ]  # fmt: skip
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    cli = build_cli()

    def killed(command):
        done = subprocess.run([sys.executable, "-c", KILLED, *command[1:]], check=False)
        assert done.returncode == -9

    killed([*commands[0], "--max-epochs", "4"])  # brief, and killed after its second epoch
    assert not (tmp_path / "runs" / "co2-long").exists()
    for command in commands[1:3]:
        result = CliRunner().invoke(cli, command[1:])
        assert result.exit_code == 0, (command, result.output)
    assert json.loads((tmp_path / "runs" / "co2-long" / "metrics.json").read_text())["rows"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["co2-long"]  # all clean
    train = shlex.split(
        "train --data examples/sensor_readings.csv --time time --target co2_ppm --horizon 4 "
        "--max-epochs 2 --no-baselines --base last --no-linear --out runs/co2"
    )
    assert CliRunner().invoke(cli, train).exit_code == 0
    killed(commands[3])  # killed after 250 readings: the snapshot of 200 stands
    assert len(pd.read_csv(tmp_path / "runs" / "co2-live.csv")) == 200
    result = CliRunner().invoke(cli, commands[4][1:])
    assert result.exit_code == 0, result.output
    rest = pd.read_csv(tmp_path / "runs" / "co2-live-2.csv")
    assert len(rest) == len(pd.read_csv("examples/sensor_readings.csv")) - 200
