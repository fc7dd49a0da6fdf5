"""A run: one model and its baselines trained on one file, evaluated on the same test period,
and everything written to one folder. The `liquidnets train/evaluate/predict` commands are
these three functions.

The run folder:

    config.json            the resolved settings (every option, defaults filled in)
    metrics.json           test metrics of the model and of every baseline
    metrics.md             the same as a table
    models/<name>/         each model: safetensors weights, JSON config and metadata
    logs/                  Lightning's CSV logs (and TensorBoard's, when installed)
    plots/*.png            forecast against actual, residuals, training curves

It is built in a temporary folder beside its final place and renamed at the end, so a failed
run leaves nothing half-written, and an existing folder is only replaced with `overwrite=True`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from liquidnets.data import load_series
from liquidnets.tasks import metrics as _metrics
from liquidnets.tasks import models as _models
from liquidnets.tasks.forecast import Forecaster

FORECAST_COLUMNS = ["mae", "rmse", "smape", "mase", "r2"]
DEFAULTS = {
    "task": "forecast",
    "time": None,
    "features": None,
    "id": None,
    "model": "cfc",
    "lookback": 32,
    "horizon": 1,
    "stride": 1,
    "units": 32,
    "season": None,
    "missing": "error",
    "time_unit": None,
    "val": 0.15,
    "test": 0.15,
    "baselines": True,
    "encoding": "utf-8",
}


class RunError(ValueError):
    """A run folder that cannot be written or read (one line)."""


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _baselines(settings: dict) -> list[str]:
    names = ["naive"]
    if settings["season"]:
        names.append("seasonal_naive")
    return [*names, "lstm", "gru"]


def train_run(
    data, out, *, target, overwrite: bool = False, train: dict | None = None, **options
) -> dict:
    """Train the model and its baselines on `data` and write the run folder `out`.

    Args:
        data: a CSV/Parquet path or a DataFrame.
        out: the run folder to create.
        target: the target column (or a list of them).
        overwrite: replace an existing run folder.
        train: `TrainConfig` fields (max_epochs, lr, patience, seed, devices, ...).
        **options: the keys of `DEFAULTS` (lookback, horizon, model, time, features, ...).

    Returns:
        The metrics: `{"rows": [{"model": name, metric: value, ...}], "table": str, ...}`.
    """
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown options: {', '.join(sorted(unknown))}")
    settings = {**DEFAULTS, **options, "target": target, "train": dict(train or {})}
    if settings["task"] != "forecast":
        raise NotImplementedError(f"task '{settings['task']}' is not available yet")
    out = Path(out)
    if out.exists() and not overwrite:
        raise RunError(f"{out} exists; pass --overwrite to replace it")
    series = load_series(
        data, targets=target, features=settings["features"], time=settings["time"],
        id=settings["id"], missing=settings["missing"], time_unit=settings["time_unit"],
        encoding=settings["encoding"],
    )  # fmt: skip
    settings["time_unit"] = series.time_unit
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        result = _train_into(tmp, series, settings)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}-old-", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return result


def _forecaster(name: str, settings: dict, budget: int | None) -> Forecaster:
    return Forecaster(
        name, lookback=settings["lookback"], horizon=settings["horizon"],
        stride=settings["stride"], units=settings["units"], season=settings["season"],
        budget=budget, train=settings["train"],
    )  # fmt: skip


def _train_into(folder: Path, series, settings: dict) -> dict:
    split = {"val": settings["val"], "test": settings["test"], "missing": settings["missing"]}
    main = _forecaster(settings["model"], settings, None)
    main.fit(series, targets=series.targets, run_dir=folder, **split)
    models = {settings["model"]: main}
    budget = _models.parameter_count(main.net) if main.net is not None else None
    if settings["baselines"]:
        for name in _baselines(settings):
            if name not in models:
                models[name] = _forecaster(name, settings, budget).fit(
                    series, targets=series.targets, **split
                )
    for name, model in models.items():
        model.save(folder / "models" / name)
    _write_json(folder / "config.json", {**settings, "models": list(models)})
    result = _evaluate(folder, models, series, settings["model"])
    history = main.history
    if history.get("train_loss"):
        from liquidnets.tasks import plots

        plots.plot_training(folder / "plots" / "training.png", history, title=settings["model"])
    return result


def _evaluate(folder: Path, models: dict, series, main_name: str) -> dict:
    rows, outputs = [], {}
    for name, model in models.items():
        bt = model.backtest(series)
        outputs[name] = bt
        rows.append(
            {"model": name, "parameters": _models.parameter_count(model.net), **bt["metrics"]}
        )
    table = _metrics.format_table(rows, ["parameters", *FORECAST_COLUMNS], title="Test period")
    result = {"rows": rows, "table": table, "test_windows": len(outputs[main_name]["times"])}
    _write_json(folder / "metrics.json", {"rows": rows})
    (folder / "metrics.md").write_text(table + "\n")
    _plot(folder / "plots", outputs[main_name], series, main_name)
    return result


def _plot(folder: Path, bt: dict, series, name: str) -> None:
    from liquidnets.tasks import plots

    first = bt["series"] == 0  # the first series; step 1 of the horizon
    times, actual, predicted = bt["times"][first], bt["actual"][first, 0], bt["predicted"][first, 0]
    title = f"{name}: one step ahead on the test period"
    plots.plot_forecast(
        folder / "forecast.png", times, actual, predicted, title=title,
        target_names=series.targets,
    )  # fmt: skip
    plots.plot_residuals(
        folder / "residuals.png", times, actual - predicted, title=f"{name}: residuals",
        target_names=series.targets,
    )  # fmt: skip


def load_run(run_dir) -> tuple[dict, dict[str, Forecaster]]:
    """The settings and the models of a run folder."""
    run_dir = Path(run_dir)
    config = run_dir / "config.json"
    if not config.is_file():
        raise RunError(f"{run_dir}: not a run folder (no config.json); create one with train")
    settings = json.loads(config.read_text())
    # the model first, then the baselines, in the order train_run made them
    return settings, {
        name: Forecaster.load(run_dir / "models" / name) for name in settings["models"]
    }


def evaluate_run(run_dir, data) -> dict:
    """Every model of the run on the test period of `data` (the split the run was made with):
    the same rows and table as `train_run` returns; plots are rewritten in the run folder."""
    settings, models = load_run(run_dir)
    return _evaluate(Path(run_dir), models, _load(data, settings), settings["model"])


def _load(data, settings: dict):
    return load_series(
        data, targets=settings["target"], features=settings["features"], time=settings["time"],
        id=settings["id"], missing=settings["missing"], time_unit=settings["time_unit"],
        encoding=settings["encoding"],
    )  # fmt: skip


def predict_run(run_dir, data, out, *, overwrite: bool = False) -> Path:
    """Forecast the horizon after the end of every series in `data` with the run's model and
    write the forecasts as CSV to `out` (atomically; an existing file only with overwrite)."""
    settings, models = load_run(run_dir)
    out = Path(out)
    if out.exists() and not overwrite:
        raise RunError(f"{out} exists; pass --overwrite to replace it")
    frame = models[settings["model"]].predict(_load(data, settings))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}-", dir=out.parent)
    os.close(fd)
    try:
        frame.to_csv(tmp, index=False)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
