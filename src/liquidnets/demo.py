"""Demo: a CfC network forecasts yearly sunspot numbers one year ahead.

Run it with ``./dev demo`` or ``python -m liquidnets.demo [--epochs N] [--seed S]``.

The data are the yearly mean sunspot numbers 1700-2008 (public domain, NOAA; see
``liquidnets/_data/README.md``). The last 20 % of the years are held out, chronologically.
The model reads a window of past years and predicts the next year at every step; on the
held-out years its one-step-ahead error is printed beside the naive forecast "next year
equals this year".

>>> years, values = load_sunspots()
>>> len(years), int(years[0]), int(years[-1])
(309, 1700, 2008)
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from importlib import resources

import numpy as np
import torch
from torch import nn

from liquidnets import CfC

DATA_FILE = "sunspots.csv"


def load_sunspots() -> tuple[np.ndarray, np.ndarray]:
    """Load the bundled yearly sunspot series.

    Returns:
        ``(years, values)``: two float64 arrays of shape ``(309,)``, years 1700..2008 and the
        yearly mean sunspot number.
    """
    text = resources.files("liquidnets").joinpath("_data", DATA_FILE).read_text("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    years = np.array([float(r["YEAR"]) for r in rows])
    values = np.array([float(r["SUNACTIVITY"]) for r in rows])
    return years, values


def make_windows(series: np.ndarray, window: int, first_target: int, last_target: int):
    """Sliding windows for next-step prediction.

    Window ``i`` reads ``series[t - window : t]`` and its targets are
    ``series[t - window + 1 : t + 1]``, where ``t`` runs over ``first_target..last_target``
    (the index of the last target). Only the past is ever read.

    Returns:
        ``(x, y)``: float32 tensors of shape ``(N, window, 1)``.
    """
    ts = range(max(first_target, window), last_target + 1)
    x = np.stack([series[t - window : t] for t in ts])  # (N, W)
    y = np.stack([series[t - window + 1 : t + 1] for t in ts])  # (N, W)
    x_t = torch.tensor(x, dtype=torch.float32).unsqueeze(-1)  # (N, W, 1)
    y_t = torch.tensor(y, dtype=torch.float32).unsqueeze(-1)  # (N, W, 1)
    return x_t, y_t


def main(argv: list[str] | None = None) -> dict:
    """Train and evaluate; print progress. Returns the results as a dict.

    Returns:
        ``{"train_loss": [per-epoch mean MSE], "test_mse": float, "baseline_mse": float}``,
        MSEs in standardised units.
    """
    parser = argparse.ArgumentParser(
        prog="python -m liquidnets.demo",
        description="Train a CfC to forecast yearly sunspot numbers (1700-2008) one year ahead.",
    )
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--units", type=int, default=32, help="CfC hidden units (default 32)")
    parser.add_argument("--window", type=int, default=24, help="years per window (default 24)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads while training (default 1)"
    )
    args = parser.parse_args(argv)

    # The model is tiny (batch 16, 32 units): extra intra-op threads buy nothing and, on a
    # busy machine, their spin-waiting makes training several times slower. Restored after.
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> dict:
    """The demo proper, with parsed arguments: see `main`."""
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()

    years, values = load_sunspots()
    n_train = int(len(values) * 0.8)
    # scale with statistics of the training years only, so nothing leaks from the future
    mean, std = values[:n_train].mean(), values[:n_train].std()
    series = (values - mean) / std

    x_train, y_train = make_windows(series, args.window, 0, n_train - 1)
    x_test, y_test = make_windows(series, args.window, n_train, len(series) - 1)
    print(
        f"sunspots {int(years[0])}-{int(years[-1])}: train {int(years[0])}-"
        f"{int(years[n_train - 1])} ({len(x_train)} windows of {args.window} years), "
        f"held out {int(years[n_train])}-{int(years[-1])} ({len(x_test)} one-year forecasts)"
    )

    # proj_size=1: the CfC's own linear head maps the hidden state to the next value
    model = CfC(1, args.units, proj_size=1, return_sequences=True, batch_first=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.MSELoss()
    batch_size = 16

    history: list[float] = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            pred, _ = model(x_train[idx])  # (B, W, 1)
            loss = loss_fn(pred, y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        history.append(total / len(x_train))
        print(f"epoch {epoch:3d}/{args.epochs}  train MSE {history[-1]:.4f}")

    model.eval()
    with torch.no_grad():
        pred, _ = model(x_test)  # (N, W, 1)
    forecast = pred[:, -1, 0]  # the prediction for the year after each window, (N,)
    target = y_test[:, -1, 0]  # (N,)
    naive = x_test[:, -1, 0]  # "next year equals this year", (N,)
    test_mse = torch.mean((forecast - target) ** 2).item()
    baseline_mse = torch.mean((naive - target) ** 2).item()

    print(
        f"held-out one-year-ahead MSE: CfC {test_mse:.4f}  |  naive last value "
        f"{baseline_mse:.4f}   (RMSE in sunspots: {np.sqrt(test_mse) * std:.1f} vs "
        f"{np.sqrt(baseline_mse) * std:.1f})"
    )
    print(f"done in {time.perf_counter() - start:.1f} s")
    return {"train_loss": history, "test_mse": test_mse, "baseline_mse": baseline_mse}


if __name__ == "__main__":
    main()
