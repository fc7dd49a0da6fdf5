"""Classification quality: the model `liquidnets train --task classify --per series` picks by
default against the peers a user would try, on the UCR/UEA sets' own train/test splits, in
one run.

    .venv/bin/python benchmarks/quality_classify.py              # every set
    .venv/bin/python benchmarks/quality_classify.py --sets UnitTest --quick
    .venv/bin/python benchmarks/quality_classify.py --cv '{"ensemble": 1}'   # choosing

Each set is one long table (`id`, `t`, one column per channel, `label`, and `split` saying
`train` or `test` as the archive splits it), trained through `liquidnets.tasks.run.train_run`
with only the options a user gives (`--task classify --label label --time t --id id --per
series --split-column split`): the default liquid model, the class prior (`naive`), and the
LSTM and GRU matched to the liquid model's parameter count. Validation series are carved
from the training series (stratified by class); the test series are never seen before
they are scored. aeon's `MiniRocketClassifier` (default settings, fixed seed) is fitted on
the same training series (all of them: it needs no validation) and scored on the same test
series; sets of unequal length are zero-padded to the longest series for it (aeon's
`Padder`), as MiniRocket needs one length.

Reported: test accuracy per set and model, each model's training seconds, the mean accuracy,
and the verdict of issue 13's target: the default liquid model's mean accuracy within 3
points of MiniRocket's, and above the class prior on every set.

Data (bundled with aeon, BSD-3; nothing is downloaded): `ArrowHead` (3 classes, 251 steps),
`JapaneseVowels` (9 speakers, 12 channels, 7-29 steps), `OSULeaf` (6 classes, 427 steps),
`ACSF1` (10 appliances, 1460 steps), `PickupGestureWiimoteZ` (10 gestures, 29-361 steps),
`UnitTest` (2 classes, 24 steps; a small subset of Chinatown).

How the per-series recipe was chosen (`liquidnets.tasks.classify.SERIES`): `--cv CONFIG`
runs a 3-fold cross-validation on each set's training series alone (stratified folds; the
archive's test series are never loaded), the classifier carving its validation series from
the two training folds, and prints the accuracy over all held-out series for the default
recipe with the options of CONFIG (JSON: `Classifier` arguments, `"train"` for
`TrainConfig` fields) changed.

aeon sits in the `bench` extra; without it this benchmark cannot load its data.
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
from _quality_run import timed_run

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "quality_classify.json"
SETS = ("ArrowHead", "JapaneseVowels", "OSULeaf", "ACSF1", "PickupGestureWiimoteZ", "UnitTest")
QUICK_SETS = ("UnitTest",)
MODELS = ("liquid", "lstm", "gru", "naive", "MiniRocket")


# -- data ------------------------------------------------------------------------------------
def load_set(name: str):
    """`(X_train, y_train, X_test, y_test)` of aeon's bundled set: lists of `(channels,
    length)` arrays and label arrays."""
    from aeon.datasets import load_classification

    out = []
    for split in ("train", "test"):
        X, y = load_classification(name, split=split)
        out += [[np.asarray(x, np.float64) for x in X], np.asarray(y).astype(str)]
    return tuple(out)


def long_frame(X_train, y_train, X_test, y_test):
    """One long table of every series: `id`, `t`, `c0..`, `label`, `split` (train/test)."""
    import pandas as pd

    parts = []
    for split, X, y in (("train", X_train, y_train), ("test", X_test, y_test)):
        for i, (x, label) in enumerate(zip(X, y, strict=True)):
            n = x.shape[-1]
            part = {"id": f"{split}{i:04d}", "t": np.arange(n)}
            part.update({f"c{j}": x[j] for j in range(x.shape[0])})
            parts.append(pd.DataFrame({**part, "label": label, "split": split}))
    return pd.concat(parts, ignore_index=True)


# -- peers -----------------------------------------------------------------------------------
def minirocket(X_train, y_train, X_test, y_test, threads: int) -> tuple[float, float]:
    """aeon's MiniRocket: test accuracy and training seconds (unequal lengths zero-padded
    to the longest series of either split)."""
    from aeon.classification.convolution_based import MiniRocketClassifier
    from aeon.transformations.collection.unequal_length import Padder

    longest = max(x.shape[-1] for x in [*X_train, *X_test])
    pad = Padder(padded_length=longest, fill_value=0)
    train, test = pad.fit_transform(X_train), pad.transform(X_test)
    t0 = time.perf_counter()
    model = MiniRocketClassifier(random_state=0, n_jobs=threads).fit(train, y_train)
    seconds = time.perf_counter() - t0
    return float(np.mean(model.predict(test) == y_test)), seconds


# -- one set ---------------------------------------------------------------------------------
def run_set(name: str, quick: bool, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    X_train, y_train, X_test, y_test = load_set(name)
    frame = long_frame(X_train, y_train, X_test, y_test)
    options = {
        "task": "classify", "label": "label", "time": "t", "id": "id", "per": "series",
        "split_column": "split",
    }  # fmt: skip
    train = {"progress_bar": False, **({"max_epochs": 2} if quick else {})}
    result, settings, models, times, total = timed_run(frame, train, **options)
    main = models[settings["model"]]
    bt = main.backtest(frame)
    tested = sorted(bt["ids"])
    if tested != sorted(f"test{i:04d}" for i in range(len(X_test))):
        raise AssertionError(f"{name}: the run did not score exactly the archive's test series")
    rows = {r["model"]: r for r in result["rows"]}
    accuracy = {"liquid": rows[settings["model"]]["accuracy"]}
    for key in ("lstm", "gru", "naive"):
        accuracy[key] = rows[key]["accuracy"]
    seconds = {"liquid": times[settings["model"]], **{k: times[k] for k in ("lstm", "gru")}}
    try:
        accuracy["MiniRocket"], seconds["MiniRocket"] = minirocket(
            X_train, y_train, X_test, y_test, threads
        )
    except ImportError:
        print("aeon's MiniRocket is not available (pip install '.[bench]')")
    lengths = [x.shape[-1] for x in [*X_train, *X_test]]
    return {
        "set": name,
        "train_series": len(X_train),
        "test_series": len(X_test),
        "channels": int(X_train[0].shape[0]),
        "length": [min(lengths), max(lengths)],
        "classes": len(set(y_train)),
        "default": {"model": settings["model"], "downsample": main.downsample},
        "parameters": rows[settings["model"]]["parameters"],
        "accuracy": {k: float(v) for k, v in accuracy.items()},
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "run_seconds": round(total, 1),
    }


# -- choosing on the training series ----------------------------------------------------------
def cross_validate(name: str, config: dict, folds: int = 3, threads: int = 2) -> float:
    """Accuracy over the held-out series of a `folds`-fold cross-validation on the training
    series of set `name` (stratified, seed 123), for `Classifier(per="series", **config)`."""
    import torch
    from aeon.datasets import load_classification

    from liquidnets.tasks import Classifier

    torch.set_num_threads(threads)
    X, y = load_classification(name, split="train")
    X, y = [np.asarray(x, np.float64) for x in X], np.asarray(y).astype(str)
    fold = np.zeros(len(y), int)
    rng = np.random.default_rng(123)
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        fold[members] = np.arange(len(members)) % folds
    config = dict(config)
    train = {"progress_bar": False, **config.pop("train", {})}
    model = config.pop("model", "cfc")
    right = 0
    for f in range(folds):
        fit, held = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        frame = long_frame([X[i] for i in fit], y[fit], [X[i] for i in held], y[held])
        clf = Classifier(model, per="series", train=dict(train), **config)
        clf.fit(frame, label="label", time="t", id="id", split_column="split")
        bt = clf.backtest(frame)
        right += int((bt["proba"].argmax(1) == bt["truth"]).sum())
    return right / len(y)


# -- report ----------------------------------------------------------------------------------
def summarise(sets: list[dict]) -> dict:
    mean = {k: float(np.mean([s["accuracy"][k] for s in sets])) for k in MODELS
            if all(k in s["accuracy"] for s in sets)}  # fmt: skip
    above_prior = all(s["accuracy"]["liquid"] > s["accuracy"]["naive"] for s in sets)
    gap = mean["MiniRocket"] - mean["liquid"] if "MiniRocket" in mean else None
    return {
        "mean_accuracy": mean,
        "gap_to_minirocket": gap,
        "targets": {
            "mean accuracy within 3 points of MiniRocket": gap is not None and gap <= 0.03,
            "above the class prior on every set": above_prior,
        },
    }


def run(quick: bool = False, threads: int = 2, sets=None) -> dict:
    """Every set (with `quick`, UnitTest for 2 epochs: a smoke test); the JSON report."""
    names = list(sets or (QUICK_SETS if quick else SETS))
    t0 = time.perf_counter()
    results = []
    for name in names:
        r = run_set(name, quick, threads)
        print(f"{name}: {r['accuracy']} ({r['run_seconds']} s)", flush=True)
        results.append(r)
    return {
        "quick": quick,
        "threads": threads,
        "sets": results,
        "summary": summarise(results),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def table(result: dict) -> str:
    """The accuracy table, the mean, the training seconds and the targets' verdicts."""
    sets = result["sets"]
    head = "| set (train/test, length) | " + " | ".join(MODELS) + " | " + " | ".join(
        f"{k} s" for k in ("liquid", "lstm", "gru", "MiniRocket")
    ) + " |"  # fmt: skip
    lines = [head, "|---|" + "--:|" * (len(MODELS) + 4)]
    for s in sets:
        acc = s["accuracy"]
        best = max(acc.values())
        cells = [
            "" if k not in acc else f"{acc[k]:.3f}" + ("*" if acc[k] == best else "")
            for k in MODELS
        ]
        lo, hi = s["length"]
        length = f"{lo}" if lo == hi else f"{lo}-{hi}"
        secs = [f"{s['seconds'][k]:.1f}" if k in s["seconds"] else "" for k in
                ("liquid", "lstm", "gru", "MiniRocket")]  # fmt: skip
        lines.append(
            f"| {s['set']} ({s['train_series']}/{s['test_series']}, {length}) | "
            + " | ".join(cells + secs) + " |"
        )  # fmt: skip
    summary = result["summary"]
    mean = summary["mean_accuracy"]
    lines.append(
        "| **mean** | " + " | ".join(f"{mean[k]:.3f}" if k in mean else "" for k in MODELS)
        + " |" * 5
    )  # fmt: skip
    lines.append("")
    for target, ok in summary["targets"].items():
        lines.append(f"- {target}: {'met' if ok else 'MISSED'}")
    if summary["gap_to_minirocket"] is not None:
        lines.append(
            f"- mean accuracy: liquid {mean['liquid']:.3f}, MiniRocket {mean['MiniRocket']:.3f} "
            f"({100 * summary['gap_to_minirocket']:+.1f} points to MiniRocket)"
        )
    lines.append(f"- {result['seconds']:.0f} s in all ({result['threads']} threads)")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", help=f"comma-separated names (default: {','.join(SETS)})")
    parser.add_argument("--quick", action="store_true", help="UnitTest, 2 epochs: a smoke test")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=str(RESULTS), help="where to write the results")
    parser.add_argument(
        "--cv", metavar="CONFIG",
        help="cross-validate the recipe changed by CONFIG (JSON) on the training series only",
    )  # fmt: skip
    args = parser.parse_args(argv)
    names = args.sets.split(",") if args.sets else None
    unknown = [n for n in names or () if n not in SETS]
    if unknown:
        parser.error(f"unknown sets {unknown}; choose from {', '.join(SETS)}")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    if args.cv is not None:
        config = json.loads(args.cv)
        scores = {}
        for name in names or SETS:
            scores[name] = cross_validate(name, config, threads=args.threads)
            print(f"{name}: {scores[name]:.3f}", flush=True)
        print(f"mean cross-validated accuracy of {args.cv}: {np.mean(list(scores.values())):.3f}")
        return 0
    result = run(args.quick, args.threads, names)
    print("\nTest accuracy (* best; liquid = the default liquid model)\n")
    print(table(result))
    from liquidnets.io.atomic import write_json

    command = "benchmarks/quality_classify.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    write_json(Path(args.json), {"command": command.strip(), **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
