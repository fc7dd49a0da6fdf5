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

    evaluations/<time>/    what `evaluate` measured later (metrics, plots, evaluation.json)

It is built in a temporary folder beside its final place and moved there at the end, so a
failed run leaves nothing half-written. The folder is claimed from the start
(`liquidnets.io.atomic.claim`): a second run to the same folder fails at once, and an existing
folder is only replaced with `overwrite=True`, and only when it is a run holding nothing a run
does not write.
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
from pathlib import Path

import numpy as np

from liquidnets.data import load_series
from liquidnets.data.windows import until_json
from liquidnets.io.atomic import Kind, claim, distinct, dumps, new_file, unfinished
from liquidnets.io.bundle import FORMAT as MODEL_FORMAT
from liquidnets.tasks import metrics as _metrics
from liquidnets.tasks import models as _models
from liquidnets.tasks.anomaly import AnomalyDetector
from liquidnets.tasks.classify import Classifier
from liquidnets.tasks.forecast import Forecaster

EVENTS = ["event_recall", "event_precision", "event_f1"]
COLUMNS = {
    "forecast": ["mae", "rmse", "smape", "mase", "r2"],
    "classify": ["accuracy", "macro_f1", "auroc"],
    "anomaly": ["precision", "recall", "f1", *EVENTS, "top1", "flagged_share"],
}
DEFAULTS = {
    "task": "forecast",
    "target": None,
    "label": None,
    "time": None,
    "features": None,
    "future": None,  # forecast: columns known over the horizon (futr_exog_list)
    "static": None,  # forecast: columns constant per series (stat_exog_list)
    "calendar": False,  # forecast: calendar features of the forecast steps
    "id": None,
    "model": "cfc",
    "lookback": None,  # forecast: 32 or two seasons (Forecaster); classify, anomaly: 32
    "horizon": 1,
    "stride": 1,
    "units": None,  # forecast: 64; classify: 32 per window, 64 per series; anomaly: 32
    "season": "auto",  # forecast, anomaly: from the timestamps (Forecaster)
    "base": "auto",
    "linear": True,
    "per": "window",
    "quantile": 0.99,
    "missing": "error",
    "time_unit": None,
    "val": 0.15,
    "test": 0.15,
    "train_until": None,  # forecast, anomaly: a time or "rows:N" instead of val/test fractions
    "split_column": None,  # a column saying train, val or test, instead of val and test
    "tolerance": 10,  # anomaly: readings a flag may lie off a labelled event (event metrics)
    "baselines": True,
    "encoding": "utf-8",
}


SCRATCH = ".scratch"  # inside a run's temporary folder: the trainings' checkpoints


class RunError(ValueError):
    """A run folder that cannot be written or read (one line)."""


RUN = Kind(
    "run", "config.json",
    frozenset({"config.json", "metrics.json", "metrics.md", "models", "logs", "plots",
               "evaluations"}),
    lambda config: "task" in config and "models" in config,
)  # fmt: skip
EVALUATION = Kind(
    "evaluation", "evaluation.json",
    frozenset({"evaluation.json", "metrics.json", "metrics.md", "plots"}),
    lambda meta: meta.get("format") == "liquidnets-evaluation",
)  # fmt: skip


def _task_class(task: str):
    return {"forecast": Forecaster, "classify": Classifier, "anomaly": AnomalyDetector}[task]


def _write_json(path: Path, data) -> None:
    path.write_text(dumps(data, sort_keys=True) + "\n")  # strict: NaN is written as null


def _baselines(settings: dict) -> list[str]:
    names = ["naive"]
    if isinstance(settings["season"], int) and settings["task"] != "classify":
        names.append("seasonal_naive")
    return [*names, "lstm", "gru"]


RESUME = "resume.json"  # in a run's temporary folder: what it was started with


def _resumable(resume) -> tuple[Path, Path, dict]:
    """(the run folder, the temporary folder a killed run left for it, what it was started
    with) from `resume`: the run folder that was being written, or that temporary folder."""
    given = Path(resume)
    name = re.fullmatch(r"\.(.+)\.tmp-[a-z0-9_]{8}", given.name)
    out = given.parent / name.group(1) if name else given
    tmp = given if name and (given / RESUME).is_file() else unfinished(out, RESUME)
    if tmp is None:
        raise RunError(
            f"--resume {resume}: no unfinished run of {out} to continue (a killed run leaves "
            f"its work in a hidden .{out.name}.tmp-* folder beside it, which a later run or "
            "liquidnets clean removes)"
        )
    try:
        started = json.loads((tmp / RESUME).read_text())
    except (OSError, ValueError) as exc:
        raise RunError(f"{tmp / RESUME}: unreadable ({exc})") from None
    return out, tmp, started


def resume_run(resume, data=None) -> dict:
    """Continue a run that was killed (`liquidnets train --resume`): the trainings it had
    finished are taken as they were, the interrupted one continues from its last epoch (its
    optimiser, schedule, early stopping and random generators restored), the rest are done,
    and the run folder is written as the uninterrupted run would have written it.

    `resume`: the run folder that was being written, or the temporary folder it left.
    `data`: needed only when the run was started from a DataFrame (a file is read again)."""
    out, tmp, started = _resumable(resume)
    if data is None:
        if started.get("data") is None:
            raise RunError(f"--resume {resume}: the run was trained from a DataFrame; give it")
        data = started["data"]
    options = {k: v for k, v in started["settings"].items() if k in DEFAULTS}
    result = train_run(
        data, out, overwrite=started["overwrite"], train=started["settings"]["train"],
        _resume=tmp, **options,
    )  # fmt: skip
    return {**result, "folder": str(out)}


def train_run(
    data, out, *, overwrite: bool = False, train: dict | None = None, _resume=None, **options
) -> dict:
    """Train the model and its baselines on `data` and write the run folder `out`.

    Args:
        data: a CSV/Parquet path or a DataFrame.
        out: the run folder to create.
        overwrite: replace an existing run folder.
        train: `TrainConfig` fields (max_epochs, lr, patience, seed, devices, ...).
        **options: the keys of `DEFAULTS`: `task` (`forecast`, `classify`, `anomaly`),
            `target` (forecast, anomaly: a column or a list), `label` (classify: the class
            column; anomaly: known anomalies, optional), `model`, `lookback`, `horizon`,
            `train_until` (forecast, anomaly: a time, or `"rows:N"`, up to which the rows
            train and validate; everything after it is the test part), `tolerance`
            (anomaly: the event metrics' tolerance in readings), ...

    Returns:
        The metrics: `{"rows": [{"model": name, metric: value, ...}], "table": str}`.
    """
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown options: {', '.join(sorted(unknown))}")
    settings = {**DEFAULTS, **options, "train": dict(train or {})}
    settings["train_until"] = until_json(settings["train_until"])  # as config.json keeps it
    task = settings["task"]
    if task not in COLUMNS:
        raise RunError(f"unknown task '{task}'; choose forecast, classify or anomaly")
    if task == "classify" and not settings["label"]:
        raise RunError("--task classify needs --label (the column of classes)")
    if task != "classify" and not settings["target"]:
        raise RunError(f"--task {task} needs --target (the column(s) to model)")
    if task == "classify" and settings["train_until"] is not None:
        raise RunError(
            "--train-until splits the rows of forecast and anomaly runs; classify splits with "
            "--val and --test, or --split-column"
        )
    if settings["train_until"] is not None and settings["split_column"] is not None:
        raise RunError("give --train-until or --split-column, not both")
    tolerance = settings["tolerance"]
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise RunError(f"--tolerance must be a whole number of readings >= 0; got {tolerance!r}")
    from liquidnets.train import TrainConfig, check_hardware, scratch

    check_hardware(TrainConfig(**settings["train"]))  # before anything starts
    out = Path(out)
    distinct({"--out": out}, {"--data": data})
    # refused here, before any training
    with claim(out, RUN, overwrite=overwrite, resume=_resume) as tmp:
        if _resume is None:  # what resume_run needs to continue it, were it killed
            source = str(Path(data).resolve()) if isinstance(data, (str, Path)) else None
            started = {"data": source, "overwrite": overwrite, "settings": settings}
            (tmp / RESUME).write_text(dumps(started))
        series = _load(data, settings)
        settings["time_unit"] = series.time_unit
        with scratch(tmp / SCRATCH):  # checkpoints: where a killed run's next claim cleans
            result = _train_into(tmp, series, settings)
        shutil.rmtree(tmp / SCRATCH, ignore_errors=True)
        (tmp / RESUME).unlink()
        return result


def _make(name: str, settings: dict, budget: int | None):
    common = {"budget": budget, "train": settings["train"]}
    task = settings["task"]
    if task == "forecast":
        sized = {k: settings[k] for k in ("lookback", "units") if settings[k] is not None}
        if name == "seasonal_naive" and "lookback" in sized:  # it reads one season back
            sized["lookback"] = max(sized["lookback"], settings["season"])
        return Forecaster(
            name, horizon=settings["horizon"], stride=settings["stride"],
            season=settings["season"], base=settings["base"], linear=settings["linear"],
            **sized, **common,
        )  # fmt: skip
    common["lookback"] = settings["lookback"] or 32
    if task == "classify":  # units: the classifier's own default (per window or per series)
        units = {} if settings["units"] is None else {"units": settings["units"]}
        return Classifier(name, stride=settings["stride"], per=settings["per"], **units, **common)
    common["units"] = settings["units"] or 32
    return AnomalyDetector(name, season=settings["season"], quantile=settings["quantile"], **common)


def _fit(model, series, settings: dict, run_dir=None):
    split = {
        "val": settings["val"], "test": settings["test"], "missing": settings["missing"],
        "split_column": settings["split_column"],
    }  # fmt: skip
    if settings["task"] == "classify":
        return model.fit(series, label=settings["label"], run_dir=run_dir, **split)
    split["train_until"] = settings["train_until"]
    if settings["task"] == "anomaly":
        return model.fit(
            series, targets=series.targets, label=settings["label"], run_dir=run_dir, **split
        )
    return model.fit(
        series, targets=series.targets, run_dir=run_dir, futr_exog_list=settings["future"],
        stat_exog_list=settings["static"], calendar=settings["calendar"], **split,
    )  # fmt: skip


def _train_into(folder: Path, series, settings: dict) -> dict:
    main = _fit(_make(settings["model"], settings, None), series, settings, run_dir=folder)
    if settings["task"] == "forecast":
        # what the main model adapted to the data (on its training and validation parts), so
        # that the baselines see the same windows, base and season
        settings.update(season=main.season, lookback=main.lookback, base=main.seasonal)
    models = {settings["model"]: main}
    budget = _models.parameter_count(main.net) if settings["model"] not in _models.NAIVE else None
    if settings["baselines"]:
        for name in _baselines(settings):
            if name not in models:
                models[name] = _fit(_make(name, settings, budget), series, settings)
    for name, model in models.items():
        model.save(folder / "models" / name, overwrite=True)  # (a resumed run's, half saved)
    _write_json(folder / "config.json", {**settings, "models": list(models)})
    result = _evaluate(folder, models, series, settings)
    if main.history.get("train_loss"):
        from liquidnets.tasks import plots

        title = f"{settings['model']}: training"
        curves = {k: main.history[k] for k in ("train_loss", "val_loss") if k in main.history}
        plots.plot_training(folder / "plots" / "training.png", curves, title=title)
    return result


def _evaluate(folder: Path, models: dict, series, settings: dict) -> dict:
    rows, outputs = [], {}
    task = settings["task"]
    # run folders written before the event metrics: their default tolerance
    extra = {"tolerance": settings.get("tolerance", 10)} if task == "anomaly" else {}
    for name, model in models.items():
        bt = model.backtest(series, **extra)
        outputs[name] = bt
        count = _models.parameter_count(model.net)
        rows.append({"model": name, "parameters": count, **bt["metrics"]})
    columns = ["parameters", *[c for c in COLUMNS[task] if any(c in r for r in rows)]]
    table = _metrics.format_table(rows, columns, title="Test period")
    result = {"rows": rows, "table": table}
    _write_json(folder / "metrics.json", {"rows": rows})
    (folder / "metrics.md").write_text(table + "\n")
    main = settings["model"]
    _plot(folder / "plots", outputs[main], series, main, models[main], task)
    return result


def _plot(folder: Path, bt: dict, series, name: str, model, task: str) -> None:
    from liquidnets.tasks import plots

    if task == "classify":
        plots.plot_confusion(
            folder / "confusion.png", bt["confusion"], model.classes,
            title=f"{name}: test period",
        )  # fmt: skip
        return
    if task == "anomaly":
        first = bt["series"] == 0
        s, e = _span(bt["times"][first], series)
        values = series.values[0][s:e][:, series.target_index]
        plots.plot_anomalies(
            folder / "anomalies.png", bt["times"][first], values, bt["scores"][first],
            bt["threshold"], truth=None if bt["truth"] is None else bt["truth"][first],
            title=f"{name}: test period",
        )  # fmt: skip
        return
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


def _span(times, series) -> tuple[int, int]:
    """Positions in the first series of the first and one past the last of `times`."""
    all_times = series.times[0]
    start = int(np.searchsorted(all_times, times[0]))
    return start, start + len(times)


NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # a model's folder under models/
TEXT, NUMBER = (str,), (int, float)
OPTIONAL = (type(None),)
# what load_run needs of a run's config.json, and of what type (keys added later are optional)
SCHEMA = {
    "task": TEXT, "model": TEXT, "models": (list,), "target": (*OPTIONAL, str, list),
    "label": (*OPTIONAL, str), "time": (*OPTIONAL, str), "id": (*OPTIONAL, str),
    "features": (*OPTIONAL, list), "missing": TEXT, "time_unit": (*OPTIONAL, str, *NUMBER),
    "val": NUMBER, "test": NUMBER, "encoding": TEXT,
}  # fmt: skip
LATER = {
    "future": (*OPTIONAL, list), "static": (*OPTIONAL, list), "split_column": (*OPTIONAL, str),
    "tolerance": (int,),
}  # fmt: skip


def _check_settings(config: Path, settings) -> None:
    """One line for a hand-edited or damaged run config.json: a missing key, a wrong type,
    a model outside the run's `models/`."""
    if not isinstance(settings, dict):
        raise RunError(f"{config}: expected a JSON object")
    for key, types in {**SCHEMA, **{k: v for k, v in LATER.items() if k in settings}}.items():
        if key not in settings:
            raise RunError(f"{config}: the key {key!r} is missing; was it edited by hand?")
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, types):
            kinds = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise RunError(f"{config}: {key} should be {kinds}; got {value!r}")
    if settings["task"] not in COLUMNS:
        raise RunError(f"{config}: unknown task {settings['task']!r}")
    models = settings["models"]
    for name in models:
        if not isinstance(name, str) or not NAME.fullmatch(name) or name in (".", ".."):
            raise RunError(
                f"{config}: model {name!r} is not a folder name under models/; a run only "
                "loads its own models"
            )
    if settings["model"] not in models:
        raise RunError(f"{config}: model {settings['model']!r} is not among models {models}")


def load_run(run_dir) -> tuple[dict, dict]:
    """The settings and the models of a run folder (the model first, then the baselines).
    Nothing outside the folder is read, and a damaged or hand-edited folder is one
    `RunError` (or `BundleError`) line."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run folder; create one with liquidnets train")
    config = run_dir / "config.json"
    if not config.is_file():
        raise RunError(f"{run_dir}: not a run folder (no config.json); create one with train")
    try:
        settings = json.loads(config.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{config}: not valid JSON ({exc})") from None
    if isinstance(settings, dict) and settings.get("format") == MODEL_FORMAT:
        raise RunError(
            f"{run_dir} is a saved model, not a run folder; give the run folder it belongs to "
            "(the one holding config.json, metrics.json and models/)"
        )
    _check_settings(config, settings)
    cls = _task_class(settings["task"])
    return settings, {name: cls.load(run_dir / "models" / name) for name in settings["models"]}


def evaluate_run(run_dir, data, out=None, *, overwrite: bool = False) -> dict:
    """Every model of the run on the test period of `data` (the split the run was made with):
    the same rows and table as `train_run` returns, plus `"folder"`, where they were written.

    The run's own training results are never changed: the metrics and plots go to a new
    folder, `out`, or by default `<run_dir>/evaluations/<UTC time>/`, with an
    `evaluation.json` saying which run and data they measure."""
    settings, models = load_run(run_dir)
    run_dir = Path(run_dir)
    if out is None:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        out = run_dir / "evaluations" / stamp
    else:
        distinct({"--out": out}, {"--data": data, "the run folder": run_dir})
    series = _load(data, settings)
    with claim(out, EVALUATION, overwrite=overwrite) as tmp:
        about = {
            "format": "liquidnets-evaluation", "run": str(run_dir.resolve()),
            "data": str(Path(data).resolve()) if isinstance(data, (str, Path)) else "<frame>",
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        }  # fmt: skip
        _write_json(tmp / "evaluation.json", about)
        result = _evaluate(tmp, models, series, settings)
    return {**result, "folder": str(out)}


def _load(data, settings: dict, split: bool = True):
    target = settings["target"]
    targets = [] if settings["task"] == "classify" else target
    # run folders written before --split-column have no such setting
    column = settings.get("split_column") if split else None
    features = settings["features"]
    if features is not None:  # covariates are input columns too
        extra = [*(settings.get("future") or []), *(settings.get("static") or [])]
        features = list(dict.fromkeys([*features, *extra]))
    return load_series(
        data, targets=targets, features=features, time=settings["time"],
        id=settings["id"], label=settings["label"], missing=settings["missing"],
        time_unit=settings["time_unit"], encoding=settings["encoding"], split=column,
    )  # fmt: skip


def predict_run(run_dir, data, out, *, overwrite: bool = False, future=None) -> Path:
    """Apply the run's model to `data` and write CSV to `out` (atomically; an existing file
    only with overwrite): forecasts for the horizon after the end of every series, classes
    with their probabilities per window, or anomaly scores and flags per reading.

    `future`: for a forecaster with future covariates, their values over the horizon after
    the end (a file or DataFrame; see `Forecaster.predict`'s `futr_df`)."""
    out = Path(out)
    distinct({"--out": out}, {"--data": data, "the run folder": run_dir, "--future-data": future})
    if out.is_dir():
        raise RunError(f"--out {out} is a folder; give the CSV file to write")
    if out.exists() and not overwrite:
        raise RunError(f"{out} exists; pass --overwrite to replace it")
    settings, models = load_run(run_dir)
    model = models[settings["model"]]
    if future is not None and settings["task"] != "forecast":
        raise RunError(f"--future-data is for forecasts; this run is a {settings['task']} run")
    series = _load(data, settings, split=False)
    frame = model.predict(series, futr_df=future) if future is not None else model.predict(series)
    with new_file(out) as tmp:
        frame.to_csv(tmp, index=False)
    return out
