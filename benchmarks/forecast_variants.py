"""Forecasting variants: the default liquid model with other options, against the LSTM and GRU
of the default run, judged on the validation parts (where a choice may be made) with the
test parts beside them (where it may not).

    .venv/bin/python benchmarks/forecast_variants.py --variant 'mm={"mixed_memory": true}' \\
        --variant 'lr={"train": {"lr": 0.001}}' --variant 'ncp={"model": "cfc-ncp"}'

For every series of `benchmarks/quality.py` (same data, horizons and splits), it fits with
`liquidnets.tasks.Forecaster` directly (no run folder):

- the default model (`cfc`, seed 0, or `--seed`), whose adapted season, lookback and base
  the LSTM and GRU then get, sized to its parameter count, as `liquidnets train` does;
- each variant: `Forecaster` arguments (`model`, `units`, `mixed_memory`,
  `backbone_layers`, ...) and `train` (`TrainConfig` fields), adapting its own season,
  lookback and base.

It prints each model's validation and test MAE per series, and per model the geometric mean
over the series of its MAE relative to the better of LSTM/GRU, and the share of series within
1.02 times it (issue 13's targets), on both parts. A variant worth taking wins on validation;
its test figures only show whether that carried over. Results go to
`benchmarks/results/forecast_variants.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its siblings, when loaded by path
from quality import series_specs

RESULTS = Path(__file__).resolve().parent / "results" / "forecast_variants.json"


def fit_one(name: str, model: str, options: dict, seed: int) -> dict:
    """`Forecaster(model, **options)` fitted on series `name`: its MAE on the validation and
    test parts, training seconds, and what it adapted."""
    from liquidnets.tasks import Forecaster
    from liquidnets.tasks.models import parameter_count

    frame, spec, _ = series_specs()[name]()
    options = dict(options)
    train = {"progress_bar": False, **options.pop("train", {}), "seed": seed}
    split = {k: spec[k] for k in ("val", "test") if k in spec}
    model = options.pop("model", model)
    forecaster = Forecaster(model, horizon=spec["horizon"], train=train, **options)
    t0 = time.perf_counter()
    forecaster.fit(frame, targets=spec["target"], time=spec["time"], **split)
    seconds = time.perf_counter() - t0
    return {
        "val": float(forecaster.backtest(frame, part="val")["metrics"]["mae"]),
        "test": float(forecaster.backtest(frame, part="test")["metrics"]["mae"]),
        "seconds": round(seconds, 2),
        "adapted": {
            "season": forecaster.season,
            "lookback": forecaster.lookback,
            "base": forecaster.seasonal,
        },
        "parameters": parameter_count(forecaster.net),
    }


def run_series(name: str, variants: dict, seed: int) -> dict:
    out = {"default": fit_one(name, "cfc", {}, seed)}
    adapted = out["default"]["adapted"]
    for rnn in ("lstm", "gru"):  # as `liquidnets train` sizes and sets up its baselines
        options = {**adapted, "budget": out["default"]["parameters"]}
        out[rnn] = fit_one(name, rnn, options, seed)
    for label, options in variants.items():
        out[label] = fit_one(name, "cfc", options, seed)
    return out


def summarise(results: dict, models: list[str]) -> dict:
    """Per model and part, the geometric-mean ratio to the better of LSTM/GRU and the share
    of series within 1.02 times it."""
    out = {}
    for model in models:
        out[model] = {}
        for part in ("val", "test"):
            ratios = [
                r[model][part] / min(r["lstm"][part], r["gru"][part]) for r in results.values()
            ]
            out[model][part] = {
                "geomean_ratio_rnn": float(np.exp(np.mean(np.log(ratios)))),
                "share_within_1.02": float(np.mean([q <= 1.02 for q in ratios])),
            }
    return out


def _variant(text: str) -> tuple[str, dict]:
    label, sep, body = text.partition("=")
    if not sep or not label:
        raise argparse.ArgumentTypeError(f"expected NAME=JSON; got {text!r}")
    try:
        options = json.loads(body)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"{label}: not JSON ({exc})") from None
    if not isinstance(options, dict):
        raise argparse.ArgumentTypeError(f"{label}: expected a JSON object; got {body!r}")
    return label, options


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--variant", type=_variant, action="append", default=[],
        help="NAME=JSON: Forecaster arguments, and 'train' for TrainConfig fields",
    )  # fmt: skip
    parser.add_argument("--series", help="comma-separated names (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=str(RESULTS), help="where to write the results")
    return parser


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    specs = series_specs()
    names = args.series.split(",") if args.series else list(specs)
    unknown = [n for n in names if n not in specs]
    if unknown:
        parser().error(f"unknown series {unknown}; choose from {', '.join(specs)}")
    variants = dict(args.variant)
    models = ["default", "lstm", "gru", *variants]
    results = {}
    for name in names:
        results[name] = r = run_series(name, variants, args.seed)
        cells = "  ".join(f"{m} {r[m]['val']:.4g}/{r[m]['test']:.4g}" for m in models)
        print(f"{name} (val/test MAE): {cells}", flush=True)
    summary = summarise(results, models)
    print("\n| model | val: geomean / RNN | val: share <= 1.02 | test: geomean | test: share |")
    print("|---|--:|--:|--:|--:|")
    for model in models:
        v, t = summary[model]["val"], summary[model]["test"]
        print(
            f"| {model} | {v['geomean_ratio_rnn']:.3f} | {v['share_within_1.02']:.2f} | "
            f"{t['geomean_ratio_rnn']:.3f} | {t['share_within_1.02']:.2f} |"
        )
    from liquidnets.io.atomic import write_json

    report = {"variants": variants, "seed": args.seed, "series": results, "summary": summary}
    write_json(Path(args.json), report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
