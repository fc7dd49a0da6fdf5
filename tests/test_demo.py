"""The demo trains and its training loss falls."""

from __future__ import annotations

import math

import torch

from liquidnets import demo


def test_bundled_data():
    years, values = demo.load_sunspots()
    assert years.shape == values.shape == (309,)
    assert years[0] == 1700 and years[-1] == 2008
    assert (values >= 0).all()


def test_demo_runs_and_loss_falls(capsys):
    result = demo.main(["--epochs", "3", "--seed", "0"])
    history = result["train_loss"]
    assert len(history) == 3
    assert all(math.isfinite(v) for v in history)
    assert history[-1] < history[0]
    assert math.isfinite(result["test_mse"]) and math.isfinite(result["baseline_mse"])
    out = capsys.readouterr().out
    assert "epoch   3/3" in out and "naive last value" in out


def test_demo_is_seeded_and_restores_threads():
    threads = torch.get_num_threads()
    a = demo.main(["--epochs", "1", "--seed", "3"])
    b = demo.main(["--epochs", "1", "--seed", "3"])
    assert a["train_loss"] == b["train_loss"]
    assert torch.get_num_threads() == threads
