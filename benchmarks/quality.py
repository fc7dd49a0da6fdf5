"""Model quality: what `liquidnets train` picks by default against the peers a user would
try, on the same test periods, in one run: forecasting (here), classification
(`quality_classify.py`) and anomaly detection (`quality_anomaly.py`).

    .venv/bin/python benchmarks/quality.py --threads 1          # every suite
    .venv/bin/python benchmarks/quality.py --suite forecast --series co2,airline --quick
    .venv/bin/python benchmarks/quality.py --suite forecast --seeds 3  # the seeds' spread

For each series, `liquidnets.tasks.run.train_run` trains what `liquidnets train` trains with
only the options a user gives (data, time, target, id, horizon): the default liquid model and
the LSTM and GRU baselines matched to its parameter count, split by time (70/15/15). The
peers, measured here on exactly the same test windows (every forecast origin whose horizon
lies in the test part), are:

- naive (the last value) and seasonal naive (one season back, with the data's true season);
- statsforecast's `AutoETS` and `AutoTheta` (season length of the data), fitted on the rows
  before the test part and then run forward from each test origin without refitting
  (`forward`), so no model sees a test value before it forecasts it.

MAE is over every window, horizon step and target, in the data's units. The targets of
issue 13 are printed with their verdicts: the default model beats naive and seasonal naive on
every series; its MAE is at most 1.02 times the better of LSTM/GRU on at least 75% of the
series with a geometric-mean ratio of at most 0.97; its geometric-mean ratio to the best
statsforecast model is at most 1.0.

A single training run is a draw: the seed alone moves a network's MAE by several percent on
these short series. `--seeds N` repeats every run with seeds 1..N-1 (the CfC and the LSTM
and GRU alike), prints each trained model's MAE per seed, and judges the targets again on
the medians over the seeds, so that a verdict does not rest on one lucky or unlucky draw.
The default runs (seed 0) stay the table's, as that is what `liquidnets train` gives.

Data (all shipped by installed packages or this repository; nothing is downloaded):

- `co2`: examples/sensor_readings.csv (UCI Occupancy Detection, CC BY 4.0, via river; see
  examples/README.md), CO2 an hour (4 readings of 16 min) ahead from all four sensors.
- `water`: examples/water_flow.csv (river's WaterFlow, BSD-3-Clause), hourly, 12 h ahead.
- `solar`: aeon's bundled `solar` (UK solar generation, half-hourly, 6 days; aeon BSD-3),
  a day (48 steps) ahead, with validation and test parts of 20% (a day and a bit) so that
  a day-ahead window fits in each.
- `airline`: aeon's `Airline` (Box & Jenkins' monthly passengers 1949-1960), a year ahead.
- `uschange`: aeon's `Uschange` (quarterly US consumption changes with income, production,
  savings and unemployment, from Hyndman's fpp2), consumption a year (4 quarters) ahead.
- `lynx`: aeon's `Lynx` (yearly Canadian lynx trappings 1821-1934, the classic series of
  Elton and Nicholson), two years ahead. (aeon's `PBS_dataset` was tried and left out: its
  one series is constant over the test part, where the naive forecast is exact.)
- `elnino`: statsmodels' `elnino` (monthly sea surface temperatures 1950-2010, public
  domain NOAA data), a year ahead.
- `sunspots`: src/liquidnets/_data/sunspots.csv (yearly sunspot numbers 1700-2008, the copy
  statsmodels ships; see src/liquidnets/_data/README.md), one year ahead.
- `trump`: river's `TrumpApproval` (daily approval ratings of five pollsters, from
  FiveThirtyEight), the average a week ahead from the pollsters' ratings.

statsforecast and aeon sit in the `bench` extra; without statsforecast the ETS and Theta
columns are left out with a note.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its siblings, when loaded by path
from _quality_run import jsonable, timed_run

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "quality.json"


# -- data ------------------------------------------------------------------------------------
def _aeon_file(name: str) -> Path:
    import aeon.datasets

    return Path(aeon.datasets.__file__).parent / "data" / name / f"{name}.csv"


def _months(start: str, n: int):
    import pandas as pd

    return pd.date_range(start, periods=n, freq="MS")


def series_specs() -> dict:
    """name -> a function giving `(frame, options, season)`: the DataFrame, the options a user
    would pass to `liquidnets train`, and the data's true season (None: none)."""
    import pandas as pd

    def co2():
        frame = pd.read_csv(ROOT / "examples" / "sensor_readings.csv")
        return frame, {"time": "time", "target": "co2_ppm", "horizon": 4}, 90

    def water():
        frame = pd.read_csv(ROOT / "examples" / "water_flow.csv")
        return frame, {"time": "time", "target": "flow_lps", "horizon": 12}, 24

    def solar():
        frame = pd.read_csv(_aeon_file("solar"))
        # 6 days: a day-ahead window needs validation and test parts of a day or more
        options = {"time": "datetime_gmt", "target": "solar_gen", "horizon": 48}
        return frame, {**options, "val": 0.2, "test": 0.2}, 48

    def airline():
        from aeon.datasets import load_airline

        y = np.asarray(load_airline(), float).ravel()
        frame = pd.DataFrame({"month": _months("1949-01-01", len(y)), "passengers": y})
        return frame, {"time": "month", "target": "passengers", "horizon": 12}, 12

    def uschange():
        frame = pd.read_csv(_aeon_file("Uschange"), index_col=0)
        quarter = frame.pop("Quarter").str.replace(" ", "")
        frame.insert(0, "quarter", pd.PeriodIndex(quarter, freq="Q").to_timestamp())
        return frame, {"time": "quarter", "target": "Consumption", "horizon": 4}, 4

    def lynx():
        frame = pd.read_csv(_aeon_file("Lynx"))
        return frame, {"time": frame.columns[0], "target": frame.columns[1], "horizon": 2}, None

    def elnino():
        import statsmodels.api as sm

        wide = sm.datasets.elnino.load_pandas().data
        temps = wide.drop(columns="YEAR").to_numpy().ravel()
        frame = pd.DataFrame({"month": _months("1950-01-01", len(temps)), "sst": temps})
        return frame, {"time": "month", "target": "sst", "horizon": 12}, 12

    def sunspots():
        frame = pd.read_csv(ROOT / "src" / "liquidnets" / "_data" / "sunspots.csv")
        return frame, {"time": "YEAR", "target": "SUNACTIVITY", "horizon": 1}, None

    def trump():
        from river import datasets

        rows = [{**x, "approval": y} for x, y in datasets.TrumpApproval()]
        frame = pd.DataFrame(rows)
        frame.insert(0, "day", pd.to_datetime(frame.pop("ordinal_date").map(_ordinal)))
        return frame, {"time": "day", "target": "approval", "horizon": 7}, 7

    return {
        "co2": co2, "water": water, "solar": solar, "airline": airline, "uschange": uschange,
        "lynx": lynx, "elnino": elnino, "sunspots": sunspots, "trump": trump,
    }  # fmt: skip


def _ordinal(day: int):
    import datetime

    return datetime.date.fromordinal(int(day))


# -- peers -----------------------------------------------------------------------------------
def test_windows(y: np.ndarray, horizon: int, val: float, test: float) -> list[int]:
    """The forecast origins (positions of each window's last input row) whose horizon lies in
    the test part, as `Forecaster.backtest` makes them (see `data.split_by_time`)."""
    from liquidnets.data.windows import _part_size

    n = len(y)
    start = n - _part_size(n, test)
    return list(range(start - 1, n - horizon))


def naive_forecasts(y, origins, horizon, season=None):
    out = []
    for o in origins:
        if season:
            steps = [o + k - season * math.ceil(k / season) for k in range(1, horizon + 1)]
            out.append(y[steps])
        else:
            out.append(np.repeat(y[o], horizon))
    return np.array(out)


def stat_forecasts(model, y, origins, horizon, season):
    """statsforecast's model fitted on the rows before the first origin's horizon (the
    training and validation parts), then run forward from every origin without refitting."""
    first = origins[0] + 1  # the first test row
    fitted = model(season_length=season or 1).fit(y[:first].astype(np.float64))
    return np.array(
        [fitted.forward(y=y[: o + 1].astype(np.float64), h=horizon)["mean"] for o in origins]
    )


# -- one series ------------------------------------------------------------------------------
def run_series(name: str, quick: bool, threads: int, seeds: int = 1) -> dict:
    """One series: the default run (seed 0) against every peer; with `seeds > 1`, the run
    repeated with `--seed 1 .. seeds-1` too, its trained models' MAEs kept per seed."""
    import torch

    torch.set_num_threads(threads)
    frame, options, season = series_specs()[name]()
    horizon = options["horizon"]
    train = {"progress_bar": False, **({"max_epochs": 2} if quick else {})}
    result, settings, models, times, total = timed_run(frame, train, **options)
    per_seed = {}
    for seed in range(1, seeds):
        again = timed_run(frame, {**train, "seed": seed}, **options)[0]
        per_seed[seed] = {r["model"]: r["mae"] for r in again["rows"]}
    bt = models[settings["model"]].backtest(frame)
    rows = {r["model"]: r for r in result["rows"]}
    y = frame[options["target"]].to_numpy(np.float64)
    origins = test_windows(y, horizon, options.get("val", 0.15), options.get("test", 0.15))
    actual = np.array([y[o + 1 : o + 1 + horizon] for o in origins])
    if not np.allclose(actual, bt["actual"][:, :, 0], rtol=1e-5, atol=1e-4):
        raise AssertionError(f"{name}: the peers' test windows differ from backtest's")
    mae = {"liquid": rows[settings["model"]]["mae"]}
    for key in ("lstm", "gru"):
        mae[key] = rows[key]["mae"]
    peers = {"naive": naive_forecasts(y, origins, horizon)}
    if season:
        peers["seasonal_naive"] = naive_forecasts(y, origins, horizon, season)
    try:
        from statsforecast.models import AutoETS, AutoTheta
    except ImportError:
        print("statsforecast is not installed: no ETS/Theta peers (pip install '.[bench]')")
    else:
        for key, model in (("AutoETS", AutoETS), ("AutoTheta", AutoTheta)):
            t0 = time.perf_counter()
            try:
                peers[key] = stat_forecasts(model, y, origins, horizon, season)
            except Exception as exc:  # a peer that fails on a series is reported, not fatal
                print(f"{name}: {key} failed ({type(exc).__name__}: {exc})")
                continue
            times[key] = time.perf_counter() - t0
    for key, forecast in peers.items():
        mae[key] = float(np.abs(forecast - actual).mean())
    trained = {"liquid": settings["model"], "lstm": "lstm", "gru": "gru"}
    seed_mae = {
        key: [mae[key]] + [per_seed[s][model] for s in sorted(per_seed)]
        for key, model in trained.items()
    }
    return {
        "series": name,
        "rows": len(frame),
        "horizon": horizon,
        "season": season,
        "windows": len(origins),
        "default": {k: settings[k] for k in ("model", "season", "lookback", "base")},
        "parameters": rows[settings["model"]]["parameters"],
        "mae": mae,
        "seed_mae": seed_mae,
        "seconds": {k: round(v, 2) for k, v in times.items()},
        "run_seconds": round(total, 1),
    }


# -- report ----------------------------------------------------------------------------------
def _geomean(values) -> float:
    values = [v for v in values if v and np.isfinite(v)]
    return float(np.exp(np.mean(np.log(values)))) if values else float("nan")


def seed_medians(r: dict) -> dict:
    """A series' MAEs with each trained model's replaced by its median over the seeds."""
    return {**r["mae"], **{k: float(np.median(v)) for k, v in r["seed_mae"].items()}}


def summarise(results: list[dict], medians: bool = False) -> dict:
    """The targets' verdicts on the default runs' MAEs (seed 0), or with `medians` on each
    trained model's median over the seeds (the same when a single seed ran)."""
    verdicts, ratios_rnn, ratios_stat = [], [], []
    beats_naive = True
    for r in results:
        m = seed_medians(r) if medians else r["mae"]
        ours = m["liquid"]
        naive_ok = ours < m["naive"] and ours < m.get("seasonal_naive", math.inf)
        beats_naive &= naive_ok
        ratio_rnn = ours / min(m["lstm"], m["gru"])
        stats = [m[k] for k in ("AutoETS", "AutoTheta") if k in m]
        ratio_stat = ours / min(stats) if stats else None
        if not medians:
            r["ratio_rnn"], r["ratio_stat"] = ratio_rnn, ratio_stat
        ratios_rnn.append(ratio_rnn)
        if ratio_stat is not None:
            ratios_stat.append(ratio_stat)
        verdicts.append(naive_ok)
    share = float(np.mean([q <= 1.02 for q in ratios_rnn])) if ratios_rnn else 0.0
    g_rnn, g_stat = _geomean(ratios_rnn), _geomean(ratios_stat)
    return {
        "beats_naive_everywhere": bool(beats_naive),
        "share_within_1.02_of_rnn": share,
        "geomean_ratio_rnn": g_rnn,
        "geomean_ratio_stat": g_stat,
        "targets": {
            "naive and seasonal naive beaten on every series": bool(beats_naive),
            "<= 1.02x best LSTM/GRU on >= 75% of series": share >= 0.75,
            "geomean ratio to best LSTM/GRU <= 0.97": g_rnn <= 0.97,
            "geomean ratio to best statsforecast <= 1.0": g_stat <= 1.0,
        },
    }


def table(results: list[dict]) -> str:
    keys = ["liquid", "lstm", "gru", "naive", "seasonal_naive", "AutoETS", "AutoTheta"]
    head = "| series (h) | " + " | ".join(keys) + " | ours/RNN | ours/stat | ours s | run s |"
    lines = [head, "|---|" + "--:|" * (len(keys) + 4)]
    for r in results:
        best = min(r["mae"].values())
        cells = []
        for k in keys:
            v = r["mae"].get(k)
            cells.append("" if v is None else f"{v:.4g}" + ("*" if v == best else ""))
        stat = "" if r["ratio_stat"] is None else f"{r['ratio_stat']:.3f}"
        ours_s = r["seconds"].get(r["default"]["model"], float("nan"))
        lines.append(
            f"| {r['series']} ({r['horizon']}) | " + " | ".join(cells)
            + f" | {r['ratio_rnn']:.3f} | {stat} | {ours_s:.1f} | {r['run_seconds']:.0f} |"
        )  # fmt: skip
    return "\n".join(lines)


SUITES = ("forecast", "classify", "anomaly")


def _suite_module(name: str):
    """benchmarks/quality_<name>.py, imported from beside this file."""
    import importlib

    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    return importlib.import_module(f"quality_{name}")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--suite", default=",".join(SUITES), help=f"comma-separated, of {', '.join(SUITES)}"
    )
    parser.add_argument("--series", help="forecast: comma-separated names (default: all)")
    parser.add_argument("--quick", action="store_true", help="2 epochs: a smoke test")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--seeds", type=int, default=1,
        help="forecast: also train with seeds 1..N-1 and judge the medians over the seeds",
    )  # fmt: skip
    parser.add_argument("--json", default=str(RESULTS), help="where to write the results")
    return parser


def main(argv=None) -> int:
    parser_ = parser()
    args = parser_.parse_args(argv)
    suites = args.suite.split(",")
    if args.seeds < 1:
        parser_.error(f"--seeds must be at least 1; got {args.seeds}")
    if not set(suites) <= set(SUITES):
        parser_.error(f"unknown suite in {suites}; choose from {', '.join(SUITES)}")
    specs = series_specs()
    names = args.series.split(",") if args.series else list(specs)
    unknown = [n for n in names if n not in specs]
    if unknown:
        parser_.error(f"unknown series {unknown}; choose from {', '.join(specs)}")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    t0 = time.perf_counter()
    report = {
        "command": "benchmarks/quality.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "threads": args.threads,
        "quick": args.quick,
    }
    if "forecast" in suites:
        report["forecast"] = forecast_suite(names, args.quick, args.threads, args.seeds)
    for suite in ("classify", "anomaly"):
        if suite in suites:
            module = _suite_module(suite)
            result = module.run(quick=args.quick, threads=args.threads)
            print(f"\n{suite}: test parts\n")
            print(module.table(result))
            print(f"\n{result['seconds']:.0f} s")
            report[suite] = json.loads(json.dumps(result, default=jsonable))
    report["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"\n{report['seconds']:.0f} s in all")
    from liquidnets.io.atomic import write_json

    write_json(Path(args.json), report)
    return 0


def forecast_suite(names: list[str], quick: bool, threads: int, seeds: int = 1) -> dict:
    """Every forecasting series of `names`, printed as it goes, then the table and verdicts
    (with `seeds > 1`, also the trained models' MAEs per seed and the verdicts on their
    medians)."""
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1; got {seeds}")
    t0 = time.perf_counter()
    results = []
    for name in names:
        r = run_series(name, quick, threads, seeds)
        print(f"{name}: {r['mae']} ({r['run_seconds']} s)", flush=True)
        results.append(r)
    summary = summarise(results)
    print("\nTest-period MAE (* best; ours = the default liquid model)\n")
    print(table(results))
    print()
    for target, ok in summary["targets"].items():
        print(f"- {target}: {'met' if ok else 'MISSED'}")
    print(
        f"\nshare within 1.02x of LSTM/GRU {summary['share_within_1.02_of_rnn']:.2f}, "
        f"geomean ours/RNN {summary['geomean_ratio_rnn']:.3f}, "
        f"geomean ours/statsforecast {summary['geomean_ratio_stat']:.3f}; "
        f"{time.perf_counter() - t0:.0f} s"
    )
    report = {"seconds": round(time.perf_counter() - t0, 1), "series": results, "summary": summary}
    if seeds > 1:
        report["summary_seed_medians"] = medians = summarise(results, medians=True)
        print(f"\nTrained models' test MAE per seed (0..{seeds - 1}); targets on the medians\n")
        print(seed_table(results))
        print()
        for target, ok in medians["targets"].items():
            print(f"- {target}: {'met' if ok else 'MISSED'}")
        print(
            f"\nshare within 1.02x of LSTM/GRU {medians['share_within_1.02_of_rnn']:.2f}, "
            f"geomean ours/RNN {medians['geomean_ratio_rnn']:.3f}, "
            f"geomean ours/statsforecast {medians['geomean_ratio_stat']:.3f}"
        )
    return report


def seed_table(results: list[dict]) -> str:
    """Per series, each trained model's MAE for every seed, and the ratio of the medians."""
    lines = ["| series | liquid | lstm | gru | median ours/RNN |", "|---|---|---|---|--:|"]
    for r in results:
        m = seed_medians(r)
        cells = [
            " / ".join(f"{v:.4g}" for v in r["seed_mae"][k]) for k in ("liquid", "lstm", "gru")
        ]
        ratio = m["liquid"] / min(m["lstm"], m["gru"])
        lines.append(f"| {r['series']} | " + " | ".join(cells) + f" | {ratio:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
