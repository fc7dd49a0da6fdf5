"""Training on Lightning: early stopping with the best weights restored, seeded runs, logs,
and DDP across two processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("lightning")

from liquidnets.tasks.models import build
from liquidnets.train import TrainConfig, fit


def sine_windows(n=96, T=12, seed=0):
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 6.28, size=(n, 1))
    t = start + 0.3 * np.arange(T + 1)
    x = np.sin(t)[:, :T, None].astype(np.float32)
    return x, np.ones((n, T), np.float32), np.sin(t)[:, T:].astype(np.float32)


def val_loss(net, data):
    x, dt, y = (torch.as_tensor(a) for a in data)
    with torch.no_grad():
        return float(torch.nn.functional.mse_loss(net(x, dt), y))


def test_fit_learns_stops_early_and_keeps_the_best_weights(tmp_path):
    train, val = sine_windows(seed=0), sine_windows(n=32, seed=1)
    torch.manual_seed(0)
    net = build("cfc", n_inputs=1, n_outputs=1, units=8)
    before = val_loss(net, val)
    config = TrainConfig(max_epochs=40, patience=3, lr=1e-2, progress_bar=False, batch_size=16)
    history = fit(net, train, val, config, run_dir=tmp_path)
    assert len(history["val_loss"]) == history["epochs"] <= 40
    best = min(history["val_loss"])
    assert best < 0.2 * before
    # the weights in the net are those of the best epoch, not of the last one
    assert val_loss(net.eval(), val) == pytest.approx(best, rel=1e-4)
    assert history["val_loss"][history["best_epoch"]] == best
    assert (tmp_path / "logs" / "metrics.csv").is_file()


def test_seeded_runs_end_with_identical_weights(tmp_path):
    train, val = sine_windows(), sine_windows(n=32, seed=1)
    finals = []
    for run in range(2):
        torch.manual_seed(123 + run)  # the config's seed must win over this
        net = build("ltc", n_inputs=1, n_outputs=1, units=6)
        config = TrainConfig(max_epochs=3, progress_bar=False, seed=7, batch_size=32)
        torch.manual_seed(7)
        net = build("ltc", n_inputs=1, n_outputs=1, units=6)
        fit(net, train, val, config, run_dir=tmp_path / str(run))
        finals.append(net.state_dict())
    for k in finals[0]:
        assert torch.equal(finals[0][k], finals[1][k]), k


@pytest.mark.slow
def test_ddp_on_two_processes_splits_the_data_and_agrees_on_the_weights(tmp_path):
    # Lightning's DDP launcher re-runs the script for rank 1; gloo on CPU.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    script = Path(__file__).with_name("ddp_worker.py")
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True,
        timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    seen = [set(r["seen"]) for r in ranks]
    assert seen[0] and seen[1] and not seen[0] & seen[1]  # disjoint shards of the data
    assert seen[0] | seen[1] == set(range(64))  # together, every window
    for k in ranks[0]["weights"]:
        assert ranks[0]["weights"][k] == ranks[1]["weights"][k], k


def test_tensorboard_logs_when_it_is_installed(tmp_path):
    pytest.importorskip("tensorboard")
    train, val = sine_windows(n=32), sine_windows(n=16, seed=1)
    net = build("cfc", n_inputs=1, n_outputs=1, units=4)
    fit(net, train, val, TrainConfig(max_epochs=1, progress_bar=False), run_dir=tmp_path)
    assert list((tmp_path / "logs" / "tensorboard").glob("events.out.tfevents.*"))
