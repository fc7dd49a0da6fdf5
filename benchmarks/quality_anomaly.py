"""Anomaly-detection quality: the detector `liquidnets train --task anomaly` trains by default
against the baselines the run trains beside it, on the same test parts, in one run.

    .venv/bin/python benchmarks/quality_anomaly.py            # every data set, a few minutes
    .venv/bin/python benchmarks/quality_anomaly.py --quick    # 2 epochs: a smoke test

For each data set, `liquidnets.tasks.run.train_run` trains what `liquidnets train --task
anomaly` trains with only the options a user gives (data, time, target, label, and
`--train-until`): the default liquid model (a CfC) and the baselines of the run (naive: the last
value as the forecast; LSTM and GRU matched to the CfC's parameter count). Every model scores
a reading by its one-step forecast error in units of the validation residual, and flags it
above a threshold set on the validation part only (the 0.99 quantile of its scores: the
validation parts hold no labelled anomaly). Everything after `--train-until` is the test part.

Per model: point-wise precision, recall and F1; event recall, the precision of the flagged
events and event F1 (`liquidnets.tasks.metrics.event_metrics`, a tolerance of 10 readings);
the UCR archive's top-1 score where the data is a UCR series (`top1_score`: is the highest
score within 100 readings of the labelled range?); per kind of injected anomaly, how many
were found; and the model's training seconds.

Data (shipped by installed packages or this repository; nothing is downloaded):

- `kdd135`: aeon's bundled `KDD-TSAD_135` (`135_UCR_Anomaly_InternalBleeding16`, the heart
  rate of a patient with internal bleeding, from the UCR anomaly archive of the SIGKDD 2021
  competition): 7,501 readings, one labelled anomaly (rows 4,187-4,198). The archive gives the
  normal training part as the first 1,200 readings (the length of its `_TRAIN` file), so the
  run is `--train-until rows:1200`.
- `daphnet`: aeon's bundled `Daphnet_S06R02E0` (9 acceleration channels at the ankle, thigh
  and trunk of a Parkinson's patient walking, 64 Hz, 110 s). The excerpt aeon ships holds no
  labelled freezing-of-gait episode (aeon 1.6 says so itself and deprecates it), so its own
  labels cannot score a detector: we inject anomalies into its second half, after
  `--train-until "1970-01-01 00:05:35"` (a time, read like the time column).
- `co2`, `water`: the example series (examples/sensor_readings.csv, CO2 with the other three
  sensors as inputs; examples/water_flow.csv), anomalies injected after the first half of
  the rows (`--train-until rows:N`).

Injected anomalies (`inject`, seed 0): spikes (1-3 readings, 3-6 robust standard deviations,
either sign), level shifts (3-6 robust SDs for a stretch) and a stuck sensor (the reading
frozen at its last value for a stretch), in a random channel of the targets, one per slot of
the test part so that no two touch; the robust SD is 1.4826 times the median absolute
deviation of the channel over the training rows. Every injected reading is labelled.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its siblings, when loaded by path
from _quality_run import jsonable, timed_run

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "quality_anomaly.json"
KINDS = ("spike", "level_shift", "stuck")
TOLERANCE = 10  # readings, the run's default (liquidnets.tasks.run.DEFAULTS)


# -- injected anomalies ---------------------------------------------------------------------
def robust_sd(x: np.ndarray) -> np.ndarray:
    """Per column, 1.4826 x the median absolute deviation (the SD for normal data)."""
    mad = np.median(np.abs(x - np.median(x, axis=0)), axis=0)
    return np.where(mad > 0, 1.4826 * mad, np.std(x, axis=0) + 1e-12)


def inject(
    values: np.ndarray,
    start: int,
    *,
    per_kind: int,
    stretch: tuple[int, int],
    seed: int = 0,
    scale_rows: slice | None = None,
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Inject `per_kind` spikes, level shifts and stuck stretches into `values (n, c)` after
    row `start`.

    The rows from `start` on are cut into `3 * per_kind` equal slots, in random order of
    kinds; each anomaly sits at a random place of its slot's middle, so that no two lie
    within a slot's margin of each other. `stretch`: the lengths (lo, hi) of level shifts
    and stuck stretches; spikes last 1-3 readings. Amplitudes are in robust SDs of the
    channel over `scale_rows` (default: the rows before `start`).

    Returns:
        The new values, the `(n,)` 0/1 labels, and one dict per anomaly (`kind`, `start`,
        `stop` exclusive, `channel`).
    """
    rng = np.random.default_rng(seed)
    out = np.array(values, dtype=np.float64, copy=True)
    n, channels = out.shape
    sd = robust_sd(out[scale_rows or slice(0, start)])
    label = np.zeros(n, dtype=np.int64)
    kinds = list(rng.permutation(np.repeat(KINDS, per_kind)))
    slot = (n - start) // len(kinds)
    if slot // 2 <= stretch[1]:
        raise ValueError(f"{n - start} rows after {start}: too few for {len(kinds)} anomalies")
    events = []
    for k, kind in enumerate(kinds):
        length = int(rng.integers(1, 4)) if kind == "spike" else int(rng.integers(*stretch))
        lo = start + k * slot + slot // 4
        first = int(rng.integers(lo, lo + slot // 2 - length))
        stop = first + length
        c = int(rng.integers(channels))
        sign = rng.choice([-1.0, 1.0])
        if kind in ("spike", "level_shift"):
            out[first:stop, c] += sign * rng.uniform(3, 6) * sd[c]
        else:
            out[first:stop, c] = out[first - 1, c]
        label[first:stop] = 1
        events.append({"kind": str(kind), "start": first, "stop": stop, "channel": c})
    return out, label, events


# -- data ------------------------------------------------------------------------------------
def _aeon_data() -> Path:
    import aeon.datasets

    return Path(aeon.datasets.__file__).parent / "data"


def datasets() -> dict:
    """name -> a function giving `(frame, options, events)`: the DataFrame (with a 0/1
    `anomaly` column), the options a user would pass to `liquidnets train --task anomaly`,
    and the injected anomalies (None: the data's own labels)."""
    import pandas as pd

    def kdd135():
        folder = _aeon_data() / "KDD-TSAD_135"
        name = "135_UCR_Anomaly_InternalBleeding16"
        frame = pd.read_csv(folder / f"{name}_TEST.csv")
        n_train = len(pd.read_csv(folder / f"{name}_TRAIN.csv"))  # the archive's normal part
        frame = frame.rename(columns={"is_anomaly": "anomaly"})
        options = {"time": "timestamp", "target": "value", "train_until": f"rows:{n_train}"}
        return frame, options, None

    def daphnet():
        frame = pd.read_csv(_aeon_data() / "Daphnet_S06R02E0" / "S06R02E0.csv")
        channels = [c for c in frame.columns if c not in ("timestamp", "is_anomaly")]
        until = "1970-01-01 00:05:35"
        start = int((pd.to_datetime(frame["timestamp"]) <= pd.Timestamp(until)).sum())
        values, label, events = inject(
            frame[channels].to_numpy(), start, per_kind=4, stretch=(32, 65), seed=0
        )
        frame[channels] = values
        frame = frame.drop(columns="is_anomaly").assign(anomaly=label)
        options = {"time": "timestamp", "target": channels, "train_until": until}
        return frame, options, _named(events, channels)

    def example(file, target, per_kind, stretch):
        def make():
            frame = pd.read_csv(ROOT / "examples" / file)
            start = len(frame) // 2
            values, label, events = inject(
                frame[[target]].to_numpy(), start, per_kind=per_kind, stretch=stretch, seed=0
            )
            frame[target] = values[:, 0]
            frame["anomaly"] = label
            options = {"time": "time", "target": target, "train_until": f"rows:{start}"}
            return frame, options, _named(events, [target])

        return make

    return {
        "kdd135": kdd135,
        "daphnet": daphnet,
        "co2": example("sensor_readings.csv", "co2_ppm", 2, (8, 17)),
        "water": example("water_flow.csv", "flow_lps", 3, (12, 25)),
    }


def _named(events: list[dict], channels: list[str]) -> list[dict]:
    return [{**e, "channel": channels[e["channel"]]} for e in events]


# -- one data set ----------------------------------------------------------------------------
def found_by_kind(bt: dict, first_row: int, events: list[dict]) -> dict:
    """Per kind of injected anomaly: how many have a flag within the tolerance (as
    `event_metrics` counts them), as `"found/injected"`. `first_row`: the row of the first
    scored reading (the test part scores every reading from it on)."""
    flagged_rows = first_row + np.flatnonzero(bt["flagged"])
    out = {}
    for kind in KINDS:
        mine = [e for e in events if e["kind"] == kind]
        hit = sum(
            bool(
                np.any(
                    (flagged_rows >= e["start"] - TOLERANCE)
                    & (flagged_rows < e["stop"] + TOLERANCE)
                )
            )
            for e in mine
        )
        out[kind] = f"{hit}/{len(mine)}"
    return out


def run_dataset(name: str, quick: bool, threads: int) -> dict:
    import torch

    from liquidnets.data import rows_until

    torch.set_num_threads(threads)
    frame, options, events = datasets()[name]()
    train = {"progress_bar": False, **({"max_epochs": 2} if quick else {})}
    result, settings, models, seconds, total = timed_run(
        frame, train, task="anomaly", label="anomaly", **options
    )
    kinds = {}
    if events is not None:
        for model_name, model in models.items():
            bt = model.backtest(frame)
            first = rows_until(model._series(frame), options["train_until"])[0]
            assert len(bt["scores"]) == len(frame) - first  # every test reading
            kinds[model_name] = found_by_kind(bt, first, events)
    rows = []
    for row in result["rows"]:
        m = row["model"]
        rows.append(
            {
                **{k: v for k, v in row.items() if k != "top1" or events is None},
                "train_seconds": round(seconds.get(m, 0.0), 2),
                **({"found": kinds[m]} if m in kinds else {}),
            }
        )
    return {
        "data": name,
        "rows_in_data": len(frame),
        "train_until": options["train_until"],
        "targets": list(np.atleast_1d(options["target"])),
        "labelled_readings": int(frame["anomaly"].sum()),
        "injected": events,
        "default": settings["model"],
        "models": rows,
        "run_seconds": round(total, 1),
    }


# -- report ----------------------------------------------------------------------------------
COLUMNS = ("precision", "recall", "f1", "event_recall", "event_precision", "event_f1", "top1",
           "flagged_share")  # fmt: skip


def run(quick: bool = False, threads: int = 2, names: list[str] | None = None) -> dict:
    """Every data set (or `names`): `{"datasets": [...], "seconds", "quick", "threads"}`."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    specs = datasets()
    names = list(specs) if names is None else names
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise ValueError(f"unknown data sets {unknown}; choose from {', '.join(specs)}")
    t0 = time.perf_counter()
    results = []
    for name in names:
        results.append(run_dataset(name, quick, threads))
    return {
        "datasets": results,
        "seconds": round(time.perf_counter() - t0, 1),
        "quick": quick,
        "threads": threads,
        "tolerance": TOLERANCE,
    }


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.3f}"
    return str(value)


def table(result: dict) -> str:
    """One Markdown row per data set and model; `*` marks the best event F1 of a data set."""
    head = ["data", "model", *COLUMNS, "found (spike/shift/stuck)", "train s"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "--:|" * (len(head) - 2)]
    for d in result["datasets"]:
        best = max(r["event_f1"] for r in d["models"])
        for r in d["models"]:
            cells = [d["data"], r["model"]]
            for c in COLUMNS:
                text = _cell(r.get(c))
                cells.append(text + ("*" if c == "event_f1" and r[c] == best else ""))
            found = r.get("found")
            cells.append(", ".join(found[k] for k in KINDS) if found else "")
            cells.append(f"{r['train_seconds']:.1f}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="comma-separated names (default: all)")
    parser.add_argument("--quick", action="store_true", help="2 epochs: a smoke test")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=str(RESULTS), help="where to write the results")
    args = parser.parse_args(argv)
    names = args.data.split(",") if args.data else None
    result = run(args.quick, args.threads, names)
    print(f"\nTest parts (after --train-until); event tolerance {TOLERANCE} readings\n")
    print(table(result))
    print(f"\n{result['seconds']:.0f} s in all")
    from liquidnets.io.atomic import write_json

    result["command"] = "benchmarks/quality_anomaly.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    write_json(Path(args.json), json.loads(json.dumps(result, default=jsonable)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
