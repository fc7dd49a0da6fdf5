"""Event-based bit-stream XOR (CfC paper, Table 4, "event-based" column): CfC, CfC with mixed
memory, LTC and an LSTM, trained with `liquidnets.train.fit`, beside the published accuracies.

    python benchmarks/xor.py                                  # 100k/10k samples, 3 seeds, 4 models
    python benchmarks/xor.py --models cfc,lstm --seeds 1 --epochs 5
    python benchmarks/xor.py --help

The data come from `liquidnets.data.xor.event_xor` (runs of equal bits as events; elapsed time =
run length / 32). 10% of the training set is held out to pick the best epoch (lowest validation
loss); the test set has its own seed. Writes `results/xor.json` beside this script unless
`--json` says where (after every seed, so a cut-short run keeps what it finished). Results of
models not in this run are kept from the file, each with the settings it ran under, so the
models can be run one at a time with the budgets that fit.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn

import liquidnets
from liquidnets.data.xor import event_xor
from liquidnets.io.atomic import write_json
from liquidnets.train import TrainConfig, fit

RESULTS = Path(__file__).parent / "results"
MODELS = ("cfc", "cfc-mixed", "ltc", "lstm")
# Table 4 of Hasani et al. (Nature MI 2022), event-based column: test accuracy %, (mean, sd)
PUBLISHED = {
    "CfC": (99.42, 0.42),
    "CfC with mixed memory": (99.72, 0.08),
    "ODE-LSTM": (98.89, 0.26),
    "GRU-D": (97.90, 1.71),
    "Augmented LSTM": (89.71, 3.48),
    "LTC": (49.11, None),
    "ODE-RNN": (51.21, None),
}
# our model -> its row in the published table (our LSTM takes [bit, dt] per event, as the
# paper's "Augmented LSTM" takes the time as an extra input)
PUBLISHED_ROW = {
    "cfc": "CfC",
    "cfc-mixed": "CfC with mixed memory",
    "ltc": "LTC",
    "lstm": "Augmented LSTM",
}
LR = {"cfc": 5e-3, "cfc-mixed": 5e-3, "ltc": 5e-3, "lstm": 5e-3}


class Liquid(nn.Module):
    """A CfC or LTC layer over the events (elapsed times as timespans), its last valid output
    mapped to 2 logits."""

    def __init__(self, layer: nn.Module, units: int):
        super().__init__()
        self.rnn = layer
        self.head = nn.Linear(units, 2)

    def forward(self, x, dt, mask):
        out, _ = self.rnn(x, timespans=dt, mask=mask)  # (B, units): the last valid step's
        return self.head(out)  # (B, 2)


class TimeLSTM(nn.Module):
    """An LSTM fed `[bit, dt]` per event; packed, so its last state is the last valid step's."""

    def __init__(self, units: int):
        super().__init__()
        self.rnn = nn.LSTM(2, units, batch_first=True)
        self.head = nn.Linear(units, 2)

    def forward(self, x, dt, mask):
        inputs = torch.cat([x, dt.unsqueeze(-1)], dim=-1)  # (B, T, 2)
        lengths = mask.sum(dim=1).clamp(min=1).cpu()  # events first, then padding
        packed = nn.utils.rnn.pack_padded_sequence(
            inputs, lengths, batch_first=True, enforce_sorted=False
        )
        _, (h, _) = self.rnn(packed)  # h: (1, B, units)
        return self.head(h[-1])  # (B, 2)


def build(model: str, units: int = 64) -> nn.Module:
    """The network for `model` (one of `MODELS`): `net(x, dt, mask) -> logits (B, 2)`."""
    if model == "cfc":
        return Liquid(liquidnets.CfC(1, units, return_sequences=False), units)
    if model == "cfc-mixed":
        return Liquid(liquidnets.CfC(1, units, return_sequences=False, mixed_memory=True), units)
    if model == "ltc":
        return Liquid(liquidnets.LTC(1, units, return_sequences=False), units)
    if model == "lstm":
        return TimeLSTM(units)
    raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")


def accuracy(net: nn.Module, data: dict, batch_size: int = 1024) -> float:
    """Test accuracy in %, of the argmax of the logits."""
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(data["y"]), batch_size):
            part = slice(i, i + batch_size)
            logits = net(
                torch.as_tensor(data["x"][part]),
                torch.as_tensor(data["dt"][part]),
                torch.as_tensor(data["mask"][part]),
            )
            correct += int((logits.argmax(dim=-1).numpy() == data["y"][part]).sum())
    return 100.0 * correct / len(data["y"])


def _summary(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _fmt(mean: float, sd: float | None) -> str:
    return f"{mean:6.2f}" + (f" ± {sd:4.2f}" if sd is not None else "       ")


def table(report: dict) -> str:
    """Our rows (test accuracy % mean ± sd over seeds) beside the published ones."""
    lines = [
        f"{'model':<12} {'ours (acc %)':>15} {'seeds':>5} {'epochs':>7} {'s/seed':>7}   "
        f"{'published row':<22} {'published':>15}"
    ]
    for model, r in report["results"].items():
        row = PUBLISHED_ROW[model]
        lines.append(
            f"{model:<12} {_fmt(r['mean'], r['sd']):>15} {len(r['accuracy']):5d} "
            f"{statistics.fmean(r['epochs']):7.1f} {statistics.fmean(r['seconds']):7.0f}   "
            f"{row:<22} {_fmt(*PUBLISHED[row]):>15}"
        )
    lines.append("published only:")
    blank = f"{'':<12} {'':>15} {'':>5} {'':>7} {'':>7}"
    for row, (mean, sd) in PUBLISHED.items():
        if row not in PUBLISHED_ROW.values():
            lines.append(f"{blank}   {row:<22} {_fmt(mean, sd):>15}")
    return "\n".join(lines)


def run(
    models: list[str] | tuple[str, ...] = MODELS,
    seeds: int = 3,
    epochs: int = 20,
    train: int = 100_000,
    test: int = 10_000,
    json_path: str | Path = RESULTS / "xor.json",
    units: int = 64,
    batch_size: int = 256,
    patience: int = 5,
    val_fraction: float = 0.1,
    verbose: bool = True,
) -> dict:
    """Train and test every model over `seeds` seeds; write and return the report.

    Args:
        models: names from `MODELS`.
        seeds: training seeds per model (0, 1, ...); the data are the same for all.
        epochs: most epochs per run (early stopping on the validation loss may end sooner).
        train, test: sample counts; `val_fraction` of `train` is held out for validation.
        json_path: where the report goes (written atomically: a temporary file, renamed).
        units: hidden units of every model.
        batch_size, patience: passed to `TrainConfig`.
        verbose: print progress and the final table.

    Returns:
        `{"task", "config", "published", "results": {model: {"accuracy": [...], "mean", "sd",
        "epochs": [...], "best_epoch": [...], "seconds": [...], "parameters", ...}}}`.
    """
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    json_path = Path(json_path)
    earlier = _earlier_results(json_path, train, test)
    data = event_xor(train, seed=1)
    test_data = event_xor(test, seed=2)
    n_val = max(1, round(train * val_fraction))
    keys = ("x", "dt", "mask", "y")
    fit_set = tuple(data[k][n_val:] for k in keys)
    val_set = tuple(data[k][:n_val] for k in keys)
    report = {
        "task": "event-based bit-stream XOR (CfC paper, Table 4)",
        "config": {
            "train": train - n_val,
            "val": n_val,
            "test": test,
            "seeds": seeds,
            "schedule": "cosine",
            "encoding": "runs of equal bits -> events; x = bit, dt = run length / 32; pad 32",
        },
        "published": {k: {"mean": m, "sd": s} for k, (m, s) in PUBLISHED.items()},
        "published_row": {m: PUBLISHED_ROW[m] for m in (*earlier, *models)},
        "results": {m: r for m, r in earlier.items() if m not in models},
    }
    for model in models:
        result = {
            "settings": {
                "max_epochs": epochs,
                "units": units,
                "batch_size": batch_size,
                "patience": patience,
                "lr": LR[model],
                "threads": torch.get_num_threads(),
            },
            "accuracy": [],
            "epochs": [],
            "best_epoch": [],
            "seconds": [],
        }
        for seed in range(seeds):
            torch.manual_seed(seed)
            net = build(model, units)
            config = TrainConfig(
                max_epochs=epochs,
                batch_size=batch_size,
                lr=LR[model],
                patience=patience,
                schedule="cosine",
                seed=seed,
                accelerator="cpu",
                devices=1,
                progress_bar=False,
                loss="cross_entropy",
            )
            start = time.perf_counter()
            history = fit(net, fit_set, val_set, config)
            seconds = time.perf_counter() - start
            acc = accuracy(net, test_data)
            result["accuracy"].append(acc)
            result["epochs"].append(len(history["val_loss"]))
            result["best_epoch"].append(history["best_epoch"] + 1)
            result["seconds"].append(seconds)
            result["parameters"] = sum(p.numel() for p in net.parameters())
            result["mean"], result["sd"] = _summary(result["accuracy"])
            report["results"][model] = result
            write_json(json_path, report)
            if verbose:
                print(
                    f"{model} seed {seed}: test accuracy {acc:.2f}%, "
                    f"{len(history['val_loss'])} epochs (best {history['best_epoch'] + 1}), "
                    f"{seconds:.0f} s",
                    flush=True,
                )
    if verbose:
        print(table(report), flush=True)
        print(f"wrote {json_path}", flush=True)
    return report


def _earlier_results(path: Path, train: int, test: int) -> dict:
    """Results kept in an earlier report at `path` on the same data sizes (none if the file
    is missing, unreadable or from other sizes)."""
    try:
        earlier = json.loads(path.read_text())
        sizes = earlier["config"]["train"] + earlier["config"]["val"], earlier["config"]["test"]
        results = earlier["results"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    if sizes != (train, test):
        return {}
    return {m: r for m, r in results.items() if m in MODELS and "settings" in r}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20, help="most epochs per run")
    parser.add_argument("--train", type=int, default=100_000, help="training samples")
    parser.add_argument("--test", type=int, default=10_000, help="test samples")
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--json", default=str(RESULTS / "xor.json"), help="report path")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    for name in ("seeds", "epochs", "train", "test", "units", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.patience < 0:
        parser.error("--patience must be non-negative")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    return run(
        models=[m.strip() for m in args.models.split(",") if m.strip()],
        seeds=args.seeds,
        epochs=args.epochs,
        train=args.train,
        test=args.test,
        json_path=args.json,
        units=args.units,
        batch_size=args.batch_size,
        patience=args.patience,
    )


if __name__ == "__main__":
    main()
