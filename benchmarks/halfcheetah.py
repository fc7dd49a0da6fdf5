"""Half-Cheetah kinematics: Table 6 of the LTC paper (Hasani et al., AAAI 2021), reproduced.

    python benchmarks/halfcheetah.py                          # 4 models x 5 seeds x 200 epochs
    python benchmarks/halfcheetah.py --models ltc --seeds 1 --epochs 3   # a timing check
    python benchmarks/halfcheetah.py --help

The data and the protocol are those of `/work/shared/data/halfcheetah/README.md`: 31 traces
`trace_XXXX.npy` of shape (1000, 17), sorted by name; validation = files 0-4, test = files 5-14,
training = files 15-24. Each file is cut into windows with stride 10: input `x[t:t+32]`, target
`x[t+1:t+33]` (the next step at every position), float32, not normalised. Only full windows are
kept, i.e. `t = 0, 10, ..., 960`, 97 per file: the paper code's `range(0, 1000 - 33, 10)`, and
the same as `make_windows(series, lookback=33, horizon=0, stride=10)` over 33-row windows
split into `w[:, :32]` and `w[:, 1:]`. The metric is the test MSE (mean over every window,
step and feature) with the weights of the epoch of best validation MSE, which
`liquidnets.train.fit` restores at the end.

Models, 32 units each, all sequence to sequence `net(x (B, 32, 17), dt (B, 32)) -> (B, 32, 17)`:

- `ltc`: `LTC(17, 32)` and a `Linear(32, 17)` on every step (the paper's read-out; the LTC's
  own output mapping is per neuron only), learning rate 0.01 as in the paper.
- `cfc`: `CfC(17, 32)` and a `Linear(32, 17)`.
- `cfc-ncp`: `CfC(17, AutoNCP(32, 17))`, its 17 motor neurons read out by a `Linear(17, 17)`.
  The linear layer is needed, not a choice of taste: a CfC state is a sigmoid-gated mix of two
  tanh heads, so every motor neuron lies in [-1, 1], while the targets are unnormalised
  (velocities with sd up to 9 and |x| > 20): even a perfect predictor clipped to [-1, 1] has an
  MSE of 13.5 on the training rows, against 3.43 for the linear anchor.
- `lstm`: `torch.nn.LSTM(17, 32)` and a `Linear(32, 17)`.

Training is `liquidnets.train.fit` with the paper's plain Adam (AdamW with weight decay 0), batch
16, learning rate 0.001 (0.01 for the LTC), no schedule, no gradient clipping and no early stop
(patience = epochs). Seeds are 0, 1, ...; the seed is set before the model is built, so it fixes
the initial weights as well as the batch order. The spread over seeds is the sample standard
deviation (ddof 1).

Two anchors are computed on the same split: predicting the mean of the training targets, and a
linear one-step least-squares predictor `x[t+1] ~ W x[t] + b` fitted on the training windows.

Writes the table as JSON to `results/halfcheetah.json` beside this script unless `--json` says
where; the file is rewritten after every seed, so a long run that is stopped keeps what it did.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

import liquidnets
from liquidnets.data import SeriesSet, make_windows
from liquidnets.train import TrainConfig, fit

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "halfcheetah"
DEFAULT_JSON = HERE / "results" / "halfcheetah.json"

FEATURES = 17
UNITS = 32
SEQ_LEN = 32
STRIDE = 10
BATCH_SIZE = 16
SPLITS = {"val": range(0, 5), "test": range(5, 15), "train": range(15, 25)}
MODELS = ("ltc", "cfc", "cfc-ncp", "lstm")
LEARNING_RATES = {"ltc": 0.01}  # the others: DEFAULT_LR
DEFAULT_LR = 0.001

# Table 6 of the paper: test MSE, mean and sd over 5 runs
PUBLISHED = {
    "LTC": (2.308, 0.015),
    "LSTM": (2.500, 0.140),
    "CT-RNN": (2.838, 0.112),
    "CT-GRU": (3.014, 0.134),
    "Neural ODE": (3.805, 0.313),
}
PUBLISHED_ANCHORS = {"training mean": 17.47, "linear least squares": 3.43}

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]  # x (N, 32, 17), dt (N, 32), y (N, 32, 17)


def load_split(data_dir: str | os.PathLike, split: str) -> SeriesSet:
    """The traces of one split (`"train"`, `"val"` or `"test"`) as a `SeriesSet`, one series
    per file, float32, one time unit per row."""
    files = sorted(Path(data_dir).glob("trace_*.npy"))
    if len(files) < 25:
        raise FileNotFoundError(f"{data_dir}: expected 31 files trace_XXXX.npy; found {len(files)}")
    chosen = [files[i] for i in SPLITS[split]]
    values = [np.load(f).astype(np.float32) for f in chosen]
    columns = [f"s{j}" for j in range(FEATURES)]
    return SeriesSet(
        columns=columns,
        targets=columns,
        ids=[f.stem for f in chosen],
        values=values,
        times=[np.arange(len(v), dtype=np.float64) for v in values],
        dt=[np.ones(len(v), dtype=np.float32) for v in values],
        rows=[np.arange(len(v), dtype=np.int64) for v in values],
        time_column=None,
        id_column="file",
        time_unit=None,
        labels=None,
        source=f"halfcheetah/{split}",
    )


def windows(series: SeriesSet) -> Arrays:
    """Windows of the protocol: 33 rows with stride 10 in each series, split into input
    `x = w[:, :32]` and next-step target `y = w[:, 1:]`; returns `(x, dt, y)`."""
    w = make_windows(series, lookback=SEQ_LEN + 1, horizon=0, stride=STRIDE)
    return w.x[:, :-1], w.dt[:, :-1], w.x[:, 1:]  # (N, 32, 17), (N, 32), (N, 32, 17)


def load_data(data_dir: str | os.PathLike) -> dict[str, Arrays]:
    """`{"train": (x, dt, y), "val": ..., "test": ...}` for the protocol's split."""
    return {split: windows(load_split(data_dir, split)) for split in SPLITS}


def anchors(train: Arrays, test: Arrays) -> dict[str, float]:
    """Test MSE of two baselines fitted on the training windows: the mean training target, and
    the linear one-step least-squares predictor `y_t = W x_t + b`."""
    x, _, y = (a.astype(np.float64) for a in train)
    xt, _, yt = (a.astype(np.float64) for a in test)
    rows, targets = x.reshape(-1, FEATURES), y.reshape(-1, FEATURES)
    mean = targets.mean(axis=0)
    design = np.c_[rows, np.ones(len(rows))]  # (N * 32, 18)
    weights = np.linalg.lstsq(design, targets, rcond=None)[0]  # (18, 17)
    predicted = np.c_[xt.reshape(-1, FEATURES), np.ones(xt.size // FEATURES)] @ weights
    return {
        "training mean": float(np.mean((yt - mean) ** 2)),
        "linear least squares": float(np.mean((predicted - yt.reshape(-1, FEATURES)) ** 2)),
    }


class SeqToSeq(nn.Module):
    """A recurrent layer with a linear read-out on every step: `(x, dt) -> (B, T, 17)`.

    Args:
        layer: a batch-first layer returning `(outputs (B, T, H), state)`.
        readout: applied to every step's output.
        timed: pass `timespans=dt` to the layer (liquid layers); False ignores `dt` (LSTM).
    """

    def __init__(self, layer: nn.Module, readout: nn.Module, timed: bool = True) -> None:
        super().__init__()
        self.layer = layer
        self.readout = readout
        self.timed = timed

    def forward(self, x: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        seq = self.layer(x, timespans=dt)[0] if self.timed else self.layer(x)[0]  # (B, T, H)
        return self.readout(seq)  # (B, T, 17)


def build(name: str) -> SeqToSeq:
    """The model `name` (one of `MODELS`), freshly initialised from torch's global RNG."""
    if name == "ltc":
        layer = liquidnets.LTC(FEATURES, UNITS, return_sequences=True, batch_first=True)
        return SeqToSeq(layer, nn.Linear(UNITS, FEATURES))
    if name == "cfc":
        return SeqToSeq(liquidnets.CfC(FEATURES, UNITS), nn.Linear(UNITS, FEATURES))
    if name == "cfc-ncp":
        # motor neurons are bounded in [-1, 1]; the Linear scales them to the raw targets
        layer = liquidnets.CfC(FEATURES, liquidnets.wirings.AutoNCP(UNITS, FEATURES))
        return SeqToSeq(layer, nn.Linear(FEATURES, FEATURES))
    if name == "lstm":
        layer = nn.LSTM(FEATURES, UNITS, batch_first=True)
        return SeqToSeq(layer, nn.Linear(UNITS, FEATURES), timed=False)
    raise ValueError(f"unknown model {name!r}; use one of: {', '.join(MODELS)}")


@torch.no_grad()
def mse(net: nn.Module, data: Arrays, batch_size: int = 256) -> float:
    """Mean squared error of `net` over every window, step and feature of `data`."""
    net.eval()
    total, count = 0.0, 0
    for i in range(0, len(data[0]), batch_size):
        x, dt, y = (torch.as_tensor(a[i : i + batch_size]) for a in data)
        total += float(((net(x, dt) - y) ** 2).sum())
        count += y.numel()
    return total / count


def _summary(runs: list[dict]) -> dict:
    scores = np.array([r["test_mse"] for r in runs])
    return {
        "test_mse_mean": float(scores.mean()),
        "test_mse_sd": float(scores.std(ddof=1)) if len(scores) > 1 else 0.0,
        "seconds_per_seed": float(np.mean([r["seconds"] for r in runs])),
        "epochs": [r["epochs"] for r in runs],
        "best_epoch": [r["best_epoch"] for r in runs],
        "runs": runs,
    }


def _write_json(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=path.name, suffix=".tmp", delete=False
    ) as f:
        json.dump(result, f, indent=1)
    os.replace(f.name, path)


def run(
    models: Sequence[str] = MODELS,
    seeds: int = 5,
    epochs: int = 200,
    data_dir: str | os.PathLike = DEFAULT_DATA,
    json_path: str | os.PathLike | None = DEFAULT_JSON,
    max_train_windows: int | None = None,
    runs_dir: str | os.PathLike | None = None,
    accelerator: str = "cpu",
    log: Callable[[str], None] = print,
) -> dict:
    """Train and test every model over `seeds` seeds; return (and write) the results.

    Args:
        models: names from `MODELS`.
        seeds: runs per model, seeded 0, 1, ...
        epochs: epochs per run (no early stopping).
        data_dir: the folder of `trace_XXXX.npy`.
        json_path: where the results go (rewritten after every seed); None: not written.
        max_train_windows: keep only the first N training windows (quick checks).
        runs_dir: where Lightning's logs go, one folder per run; None: temporary folders.
        accelerator: passed to Lightning (the small recurrent models run best on CPU).
        log: called with a line of progress after every seed.

    Returns:
        `{"metadata", "protocol", "anchors", "published", "published_anchors", "results"}`;
        `results[model]` has `test_mse_mean`, `test_mse_sd`, `seconds_per_seed`, `epochs`,
        `best_epoch` (1-based, per seed) and `runs` (per seed: test and best validation MSE,
        epochs, best epoch, seconds, learning curves).
    """
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model {unknown[0]!r}; use one of: {', '.join(MODELS)}")
    data = load_data(data_dir)
    baselines = anchors(data["train"], data["test"])  # on the full split, always
    if max_train_windows is not None:
        data["train"] = tuple(a[:max_train_windows] for a in data["train"])
    result = {
        "metadata": {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "liquidnets": liquidnets.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "threads": torch.get_num_threads(),
            "accelerator": accelerator,
            "command": " ".join(sys.argv),
        },
        "protocol": {
            "data": str(data_dir),
            "windows": {split: len(arrays[0]) for split, arrays in data.items()},
            "seq_len": SEQ_LEN,
            "stride": STRIDE,
            "units": UNITS,
            "batch_size": BATCH_SIZE,
            "epochs": epochs,
            "seeds": seeds,
            "max_train_windows": max_train_windows,
            "learning_rates": {m: LEARNING_RATES.get(m, DEFAULT_LR) for m in models},
        },
        "anchors": baselines,
        "published": {k: {"mean": m, "sd": s} for k, (m, s) in PUBLISHED.items()},
        "published_anchors": PUBLISHED_ANCHORS,
        "results": {},
    }
    for name in models:
        runs = []
        for seed in range(seeds):
            torch.manual_seed(seed)  # the initial weights; fit seeds the batch order
            net = build(name)
            config = TrainConfig(
                max_epochs=epochs,
                batch_size=BATCH_SIZE,
                lr=LEARNING_RATES.get(name, DEFAULT_LR),
                weight_decay=0.0,
                patience=epochs,
                gradient_clip=0.0,
                schedule="none",
                seed=seed,
                accelerator=accelerator,
                devices=1,
                progress_bar=False,
                loss="mse",
            )
            run_dir = None if runs_dir is None else Path(runs_dir) / f"{name}-seed{seed}"
            start = time.perf_counter()
            history = fit(net, data["train"], data["val"], config, run_dir=run_dir)
            net = net.cpu()
            test = mse(net, data["test"])
            seconds = time.perf_counter() - start
            runs.append(
                {
                    "seed": seed,
                    "test_mse": test,
                    "val_mse": float(min(history["val_loss"])),
                    "epochs": history["epochs"],
                    "best_epoch": history["best_epoch"] + 1,
                    "seconds": seconds,
                    "train_loss": history["train_loss"],
                    "val_loss": history["val_loss"],
                }
            )
            log(
                f"{name} seed {seed}: test MSE {test:.3f}, best epoch "
                f"{history['best_epoch'] + 1}/{history['epochs']}, {seconds:.0f} s"
            )
            result["results"][name] = _summary(runs)
            if json_path is not None:
                _write_json(result, Path(json_path))
    return result


def format_table(result: dict) -> str:
    """Our rows beside the published ones, then the anchors, as plain text."""
    lines = [
        f"{'model':<30} {'test MSE':>16} {'epochs':>8} {'best epoch':>12} {'s/seed':>8}",
    ]
    for name, r in result["results"].items():
        best = "/".join(str(b) for b in r["best_epoch"])
        lines.append(
            f"{name + ' (ours)':<30} {r['test_mse_mean']:>8.3f} ± {r['test_mse_sd']:<5.3f} "
            f"{max(r['epochs']):>8} {best:>12} {r['seconds_per_seed']:>8.0f}"
        )
    for name, p in result["published"].items():
        lines.append(f"{name + ' (published)':<30} {p['mean']:>8.3f} ± {p['sd']:<5.3f}")
    for name, value in result["anchors"].items():
        paper = result["published_anchors"][name]
        lines.append(f"{name + ' (anchor)':<30} {value:>8.3f}   (published {paper:.2f})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict:
    """The command line; returns what `run` returns."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated models")
    parser.add_argument("--seeds", type=int, default=5, help="runs per model (default 5)")
    parser.add_argument("--epochs", type=int, default=200, help="epochs per run (default 200)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="folder of trace_XXXX.npy")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="where the results go")
    parser.add_argument("--max-train-windows", type=int, default=None, help="for quick checks")
    parser.add_argument("--runs-dir", default=None, help="keep Lightning's logs here")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--accelerator", default="cpu", help="Lightning accelerator (cpu)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    result = run(
        models,
        args.seeds,
        args.epochs,
        args.data,
        args.json,
        args.max_train_windows,
        args.runs_dir,
        args.accelerator,
        log=lambda line: print(line, flush=True),
    )
    print(format_table(result))
    print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
