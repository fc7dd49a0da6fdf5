"""Forecasting: windows of past readings in, the next `horizon` values of the targets out.

>>> import numpy as np, pandas as pd
>>> t = np.arange(300)
>>> frame = pd.DataFrame({"t": t, "temp": np.sin(t / 8), "load": np.cos(t / 8)})
>>> model = Forecaster("naive", lookback=16, horizon=4)
>>> model = model.fit(frame, targets="temp", time="t")
>>> forecast = model.predict(frame)  # the 4 steps after the end of the data
>>> list(forecast.columns)
['id', 'step', 'time', 'temp']
>>> bool(np.allclose(forecast["temp"], np.sin(299 / 8), atol=1e-5))  # naive: the last value
True
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from liquidnets.data import (
    DataError,
    Scaler,
    SeriesSet,
    auto_lookback,
    infer_season,
    load_series,
    make_windows,
    season_room,
)
from liquidnets.data import covariates as _cov
from liquidnets.data.windows import until_json
from liquidnets.io import hand_edits, load_bundle, save_bundle
from liquidnets.tasks import metrics as _metrics
from liquidnets.tasks import models as _models
from liquidnets.tasks._common import align_columns, load_like, run_net, split_rows
from liquidnets.train import TrainConfig
from liquidnets.train import fit as _fit
from liquidnets.train.fit import auto_batch_size

TASK = "forecast"
BASES = ("auto", "last", "season", "mixed")


def _names(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _trimmed_errors(error: torch.Tensor, keep: float = 0.9) -> torch.Tensor:
    """Per window of `error (windows, outputs)`, the mean absolute error; the `keep` share
    of windows with the smallest. A fault or a stop in the validation part (a maintenance
    stop in a flow meter's record, say) makes a few windows' errors huge, and the plain mean
    would then choose for those windows rather than for every normal day; the median, on the
    other hand, ignores the large moves a forecaster is there to catch."""
    per_window = error.abs().mean(dim=1)
    k = max(1, int(len(per_window) * keep))
    return per_window.sort().values[:k]


def _base_name(seasonal: list[bool]) -> str:
    return "season" if all(seasonal) else "last" if not any(seasonal) else "mixed"


class Forecaster:
    """A forecasting model over sliding windows, in the conventions of darts and
    neuralforecast: `fit`, `predict`, `backtest`, `save`, `load`.

    The default recipe, designed on the public series of `benchmarks/quality.py` (whose
    table reports it on their test periods: treat those figures as a development set's): a
    CfC of 64 units whose heads read `[x; h]` directly (no backbone), a linear map of the
    window's target history beside it, both added to a base (the last value, or the value
    one season back when that forecasts the validation part better), trained with the MAE
    loss in batches sized to the data, and after training weighed against that base on the
    validation part. `lstm` and `gru` get the same base, linear map and loss, so a run's
    table compares the recurrent cells themselves.

    Args:
        model: one of `liquidnets.tasks.models.MODELS`: `cfc`, `ltc`, `cfc-ncp`, `ltc-ncp`,
            `lstm`, `gru`, `naive`, `seasonal_naive`.
        lookback: input steps per window; None (default): 32, or two seasons when that is
            longer, shortened so that the training part holds windows.
        horizon: steps forecast at once (every target at every step).
        stride: steps between consecutive training windows.
        units: neurons of a liquid model.
        season: the period in steps, for `seasonal_naive`, the seasonal base and MASE; `"auto"`
            (default) infers it from the timestamps' step (a day of half-hourly or hourly
            readings, a week of daily ones, a year of weekly, monthly or quarterly ones; see
            `liquidnets.data.infer_season`), None for none.
        budget: parameter count an `lstm`/`gru` should match (see `models.build`).
        base: what a trained model forecasts the change from: `last` (the last value),
            `season` (the value one season back), `auto` (default: per horizon step, the one
            of the two with the lower median absolute error on the validation part), or one
            flag per horizon step (True: a season back).
        linear: add a linear map of the window's target history (see
            `models.FromLastValue`; default True).
        backbone_layers: the CfC's backbone depth (default 0: none; None: ncps's 1 x 128).
        mixed_memory: an LSTM memory beside the liquid cell (default False).
        shrink: after training, weigh what the model learnt against its base on the
            validation part (see `_shrink`; default True).
        train: a `TrainConfig`, or keyword arguments of one; the loss defaults to `mae`.
    """

    def __init__(
        self,
        model: str = "cfc",
        *,
        lookback: int | None = None,
        horizon: int = 1,
        stride: int = 1,
        units: int = 64,
        season: int | str | None = "auto",
        budget: int | None = None,
        base: str = "auto",
        linear: bool = True,
        backbone_layers: int | None = 0,
        mixed_memory: bool = False,
        shrink: bool = True,
        train: TrainConfig | dict | None = None,
    ):
        if model not in _models.MODELS:
            raise ValueError(f"unknown model '{model}'; choose one of: {', '.join(_models.MODELS)}")
        if (lookback is not None and lookback < 1) or horizon < 1 or stride < 1:
            raise ValueError(
                f"lookback, horizon and stride must be positive; got {lookback}, {horizon}, "
                f"{stride}"
            )
        if season is not None and season != "auto" and (not isinstance(season, int) or season < 1):
            raise ValueError(
                f"season must be a positive number of steps, 'auto' or None; got {season!r}"
            )
        if model == "seasonal_naive" and season in (None, "auto"):
            raise ValueError("seasonal_naive needs season= (the period in steps)")
        seasonal = None
        if isinstance(base, (list, tuple)):  # per horizon step, as a fitted model records it
            if len(base) != horizon:
                raise ValueError(f"base needs one flag per horizon step ({horizon}); got {base}")
            seasonal = [bool(f) for f in base]
            base = _base_name(seasonal)
        elif base not in BASES:
            raise ValueError(f"base must be one of {', '.join(BASES)}; got {base!r}")
        self.model = model
        self.lookback, self.horizon, self.stride = lookback, horizon, stride
        self.units, self.season, self.budget = units, season, budget
        self.base, self.linear = base, bool(linear)
        self.seasonal: list[bool] | None = seasonal  # per step: the base is one season back
        self.backbone_layers, self.mixed_memory = backbone_layers, bool(mixed_memory)
        self.shrink = bool(shrink)
        config = train if isinstance(train, TrainConfig) else TrainConfig(**(train or {}))
        if config.loss is None:
            config.loss = "mae"
        self.train_config = config
        self.net: torch.nn.Module | None = None
        self.scaler: Scaler | None = None
        self.spec: dict = {}
        self.history: dict = {}

    # -- data --------------------------------------------------------------------------
    def _series(self, data, future: dict | None = None, split: bool = True) -> SeriesSet:
        """`data` read as the model was fitted, its future covariates as leads (`future`: their
        values after each series' end), in the model's column order (`split=False`: without
        its split column)."""
        series = load_like(data, self.spec, split=split)
        if not any(c.endswith(_cov.AHEAD) for c in series.columns):
            futr, names = self.spec.get("futr_exog", []), self.spec.get("calendar", [])
            _cov.check_static(series, self.spec.get("stat_exog", []))
            series = _cov.with_future(series, futr, names, self.horizon, future=future)
        align_columns(series, self.spec["columns"])
        return series

    def _future(self, futr_df, series: SeriesSet) -> dict | None:
        """`futr_df` (a DataFrame or a path) as `{series id: (horizon, n_futr) values}`."""
        futr = self.spec.get("futr_exog", [])
        if not futr:
            return None
        if futr_df is None:
            raise ValueError(
                f"the model reads future covariates {futr}: pass futr_df (--future-data) with "
                f"their values over the {self.horizon} steps after the end of each series"
            )
        from liquidnets.data import read_table

        frame = futr_df if not isinstance(futr_df, (str, Path)) else read_table(futr_df)
        name = str(futr_df) if isinstance(futr_df, (str, Path)) else "futr_df"
        missing = [c for c in futr if c not in frame.columns]
        if missing:
            raise DataError(f"{name}: no column {missing[0]!r} (the future covariates: {futr})")
        key = self.spec["id"]
        if key is not None and key not in frame.columns:
            raise DataError(f"{name}: no id column {key!r}")
        out = {}
        for sid in series.ids:
            rows = frame if key is None else frame[frame[key].astype(str) == sid]
            if len(rows) < self.horizon:
                where = f" for series {sid!r}" if key is not None else ""
                raise DataError(
                    f"{name}: {len(rows)} rows{where}; the forecast needs the {self.horizon} "
                    f"steps after the end"
                )
            values = rows[futr].head(self.horizon).to_numpy(np.float64)
            if not np.isfinite(values).all():
                raise DataError(f"{name}: the future covariates {futr} must all be numbers")
            out[sid] = values
        return out

    # -- fitting -----------------------------------------------------------------------
    def fit(
        self,
        data,
        *,
        targets,
        features=None,
        time: str | None = None,
        id: str | None = None,
        missing: str = "error",
        time_unit=None,
        val: float = 0.15,
        test: float = 0.15,
        train_until=None,
        split_column: str | None = None,
        run_dir: str | Path | None = None,
        hist_exog_list=None,
        futr_exog_list=None,
        stat_exog_list=None,
        calendar: bool = False,
    ) -> Forecaster:
        """Fit on the training part of `data` (a path, a DataFrame or a `SeriesSet`), with early
        stopping on the validation part; the last `test` fraction of every series is left for
        `backtest`. `train_until`: where the training data ends instead (a time, or `"rows:N"`
        for the first N rows; see `liquidnets.data.rows_until`): validation is the last `val`
        of the rows up to it, and everything after it is the test part. The scaler is fitted
        on the training rows only, and whatever adapts to the data (the season, the lookback,
        the base) is chosen on the training and validation parts only. `split_column`: a
        column saying `train`, `val` or `test` per row instead, in that order in time in every
        series (see `liquidnets.data.split_by_column`). Returns `self`.

        Covariates, named as in neuralforecast (see `liquidnets.data.covariates`):
        `hist_exog_list` (or `features`): past covariates, inputs known up to the present
        (None: every numeric column but the targets); `futr_exog_list`: columns known over
        the horizon, fed as leads, whose values after the end `predict` takes as `futr_df`;
        `stat_exog_list`: columns constant within each series (`id`), read as inputs;
        `calendar`: the calendar features of the forecast steps' timestamps (hour, weekday,
        day of the year or month, by the sampling step) as future covariates."""
        if train_until is not None and split_column is not None:
            raise ValueError("give train_until or split_column, not both")
        futr, stat = _names(futr_exog_list), _names(stat_exog_list)
        if hist_exog_list is not None:
            if features is not None and _names(features) != _names(hist_exog_list):
                raise ValueError("give features or hist_exog_list (the same thing), not both")
            features = hist_exog_list
        if features is not None:  # the covariates are input columns too
            features = list(dict.fromkeys([*_names(features), *futr, *stat]))
        series = data if isinstance(data, SeriesSet) else load_series(
            data, targets=targets, features=features, time=time, id=id, missing=missing,
            time_unit=time_unit, split=split_column,
        )  # fmt: skip
        _cov.check_static(series, stat)
        names = []
        if calendar:
            steps = [np.median(np.diff(t)) for t in series.times if len(t) > 1]
            if not steps or any(t.dtype.kind != "M" for t in series.times):
                raise DataError(
                    f"{series.source}: calendar features need timestamps in the time column "
                    f"({series.time_column or 'no --time given'})"
                )
            names = _cov.calendar_names(np.median(np.array(steps)))
        loaded = [c for c in series.columns if c not in series.targets]
        series = _cov.with_future(series, futr, names, self.horizon)
        self.spec = {
            "targets": list(series.targets),
            "features": [c for c in loaded if not c.endswith("__missing")],
            "time": series.time_column,
            "id": series.id_column,
            "missing": missing,
            "time_unit": series.time_unit,
            "columns": list(series.columns),
            "val": val,
            "test": test,
            "futr_exog": futr,
            "stat_exog": stat,
            "calendar": names,
            "train_until": until_json(train_until),
            "split_column": split_column,
        }
        if (futr or names) and self.lookback is not None and self.lookback <= self.horizon:
            raise ValueError(
                f"future covariates need lookback > horizon ({self.horizon}) to reach the "
                f"present and every forecast step; got lookback {self.lookback}"
            )
        parts = self._parts(series)
        train_rows = [len(range(*p.indices(len(v)))) for v, p in zip(series.values, parts["train"])]
        if self.season == "auto":
            self.season = infer_season(series, min(train_rows) if train_rows else 0)
        auto = self.lookback is None
        self.lookback = self.lookback or auto_lookback(self.season, self.horizon, train_rows)
        if futr or names:
            self.lookback = max(self.lookback, self.horizon + 1)
        self.scaler = Scaler.fit(
            [v[p] for v, p in zip(series.values, parts["train"])], series.columns
        )
        if self.base == "auto":
            m = self.season
            if (
                auto
                and isinstance(m, int)
                and self.lookback < m <= season_room(self.horizon, train_rows)
            ):  # a short series: one season back is the least window a seasonal base needs
                seasonal = self._choose_base(series, parts, m)
                if any(seasonal):
                    self.lookback = m
            self.seasonal = self._choose_base(series, parts, self.lookback)
            self.base = _base_name(self.seasonal)
        elif self.seasonal is None:
            self.seasonal = [self.base == "season"] * self.horizon
        self.net = self._build(len(series.columns), series.target_index)
        if self.model in _models.NAIVE:
            self.history = {}
            return self
        train = self._arrays(series, parts["train"], self.stride)
        valid = self._arrays(series, parts["val"], 1)
        if self.train_config.batch_size is None:
            self.train_config.batch_size = auto_batch_size(len(train[0]))
        self.history = _fit(self.net, train, valid, self.train_config, run_dir=run_dir)
        if self.shrink:
            self.history["shrink"] = self._shrink(valid)
        return self

    def _shrink(self, valid) -> float:
        """The weight `w` in 0, 0.1, ..., 1 of what the model learnt over its base, so that
        it forecasts `base + w * (linear + net)`, folded into the output layers
        (`FromLastValue.shrink`). Of the weights whose trimmed MAE on the validation part
        (`_trimmed_errors`) lies within one standard error of the lowest, the largest: a
        network that does not beat its base on validation data falls back towards it (on a
        random walk, the naive forecast; on a short seasonal series, the seasonal naive one),
        while a few validation windows that happen to favour the base do not undo training."""
        x, dt, y = valid
        y = torch.as_tensor(np.asarray(y))  # (N, H * n)
        net = self.net
        net.eval()
        bases, learnts = [], []
        with torch.no_grad():
            for i in range(0, len(x), 4096):  # a batch at a time: windows are read on demand
                xb = torch.as_tensor(np.asarray(x[i : i + 4096]))
                db = torch.as_tensor(np.asarray(dt[i : i + 4096]))
                b = net.base_forecast(xb)  # (B, H * n)
                bases.append(b)
                learnts.append(net(xb, db) - b)
        base, learnt = torch.cat(bases), torch.cat(learnts)
        grid = torch.linspace(0, 1, 11)
        kept = [_trimmed_errors(base + w * learnt - y) for w in grid]
        means = torch.stack([k.mean() for k in kept])
        best = int(torch.argmin(means))
        se = kept[best].std() / len(kept[best]) ** 0.5 if len(kept[best]) > 1 else 0.0
        w = float(grid[max(i for i in range(len(grid)) if means[i] <= means[best] + se)])
        net.shrink(torch.full((y.shape[1],), w))
        return w

    def _choose_base(self, series: SeriesSet, parts, lookback: int) -> list[bool]:
        """Per horizon step, whether one season back forecasts the validation part better than
        the last value, in windows of `lookback` rows: a lower median absolute error. The
        median, not the mean: a fault or a maintenance stop in the validation part would
        otherwise decide for every normal day."""
        m = self.season
        steps = [False] * self.horizon
        if not isinstance(m, int) or m < 2 or m > lookback:
            return steps
        try:
            w = make_windows(
                series, lookback, self.horizon, 1, parts=parts["val"], scaler=self.scaler
            )
        except DataError:
            return steps
        x, y = torch.as_tensor(np.asarray(w.x)), np.asarray(w.y)  # the validation part
        errors = {}
        for period in (1, m):
            naive = _models.NaiveNet(series.target_index, self.horizon, period)
            guess = naive(x, None).numpy().reshape(y.shape)  # (N, H, n_targets)
            errors[period] = np.median(np.abs(guess - y), axis=(0, 2))  # (H,)
        return [bool(s < last) for s, last in zip(errors[m], errors[1])]

    def _build(self, n_inputs: int, target_index: list[int]) -> torch.nn.Module:
        season = self.season if isinstance(self.season, int) else 1
        seasonal = self.seasonal or [False] * self.horizon
        n_skip = (self.lookback + 1) * self.horizon * len(target_index) if self.linear else 0
        budget = None if self.budget is None else max(1, self.budget - n_skip)
        net = _models.build(
            self.model, n_inputs=n_inputs, n_outputs=self.horizon * len(target_index),
            units=self.units, target_index=target_index, horizon=self.horizon,
            season=season, budget=budget, seed=self.train_config.seed,
            backbone_layers=self.backbone_layers, mixed_memory=self.mixed_memory,
        )  # fmt: skip
        if self.model in _models.NAIVE:
            return net
        columns = self.spec.get("columns", [])
        ahead = [j for j, c in enumerate(columns) if c.endswith(_cov.AHEAD)]
        return _models.FromLastValue(
            net, target_index, self.horizon, season=season, lookback=self.lookback,
            linear=self.linear, seasonal=seasonal, future_index=ahead,
        )  # fmt: skip

    def _arrays(self, series: SeriesSet, parts, stride: int):
        w = make_windows(
            series, self.lookback, self.horizon, stride, parts=parts, scaler=self.scaler
        )
        return w.x, w.dt, w.y.reshape(len(w), -1)

    # -- prediction --------------------------------------------------------------------
    def _forward(self, x: np.ndarray, dt: np.ndarray) -> np.ndarray:
        """Scaled windows in, scaled forecasts `(N, horizon, n_targets)` out."""
        assert self.net is not None, "fit or load the model first"
        n = len(self.spec["targets"])
        return run_net(self.net, x, dt, self.horizon * n).reshape(len(x), self.horizon, n)

    def _unscale(self, y: np.ndarray, series: SeriesSet) -> np.ndarray:
        return self.scaler.inverse(y, index=series.target_index)

    def predict(self, data, futr_df=None):
        """Forecast the `horizon` steps after the end of every series in `data`.

        `futr_df`: for a model with future covariates (`futr_exog_list`), their values over
        those steps: a DataFrame or file with the covariate columns (and the id column), the
        first `horizon` rows of each series in time order.

        Returns a DataFrame with columns `id`, `step` (1..horizon), `time` (the forecast time,
        extrapolated with the median step; a row position without a time column) and one
        column per target."""
        import pandas as pd

        loaded = load_like(data, self.spec, split=False)
        series = self._series(loaded, future=self._future(futr_df, loaded))
        rows = []
        for k, (values, dt, times) in enumerate(zip(series.values, series.dt, series.times)):
            if len(values) < self.lookback:
                raise ValueError(
                    f"series '{series.ids[k]}' has {len(values)} rows; the model needs lookback "
                    f"{self.lookback}"
                )
            x = self.scaler.transform(values[-self.lookback :])[None]
            y = self._unscale(self._forward(x, dt[-self.lookback :][None]), series)[0]
            step = np.median(np.diff(times)) if len(times) > 1 else 1
            for h in range(self.horizon):
                row = {"id": series.ids[k], "step": h + 1, "time": times[-1] + step * (h + 1)}
                row.update(dict(zip(series.targets, y[h].tolist())))
                rows.append(row)
        return pd.DataFrame(rows)

    def backtest(self, data=None, *, part: str = "test") -> dict:
        """Forecast every window whose targets fall in the `test` (or `val`) part of `data`,
        with the inputs reaching back as far as `lookback` needs.

        Returns `{"metrics": {...}, "times": (N,), "actual": (N, H, n), "predicted": (N, H, n),
        "series": (N,)}`, values in the data's own units, `times` those of each window's first
        forecast step; metrics over every horizon step:
        MAE, RMSE, sMAPE, MASE (scaled by the in-sample naive error on the training part,
        seasonal when a season is set or inferred) and R²."""
        series = self._series(data)
        parts = self._parts(series)
        w = make_windows(
            series, self.lookback, self.horizon, 1, parts=parts[part], scaler=self.scaler
        )
        predicted = self._unscale(self._forward(w.x, w.dt), series)
        actual = self._unscale(np.asarray(w.y), series)
        train_targets = [
            v[p][:, series.target_index] for v, p in zip(series.values, parts["train"])
        ]
        scores = _metrics.forecast_metrics(
            actual.reshape(-1, actual.shape[-1]), predicted.reshape(-1, predicted.shape[-1]),
            y_train=train_targets, season=self._period(),
        )  # fmt: skip
        times = np.array([series.times[s][e + 1] for s, e in zip(w.series, w.end)])
        return {
            "metrics": scores,
            "times": times,
            "actual": actual,
            "predicted": predicted,
            "series": w.series,
        }

    def _parts(self, series: SeriesSet) -> dict:
        """The split the model was fitted with (see `tasks._common.split_rows`)."""
        return split_rows(series, self.spec)

    def _period(self) -> int:
        return self.season if isinstance(self.season, int) else 1

    # -- persistence -------------------------------------------------------------------
    def config(self) -> dict:
        return {
            "task": TASK,
            "model": self.model,
            "lookback": self.lookback,
            "horizon": self.horizon,
            "stride": self.stride,
            "units": self.units,
            "season": self.season,
            "budget": self.budget,
            "base": self.base,
            "seasonal": self.seasonal,
            "linear": self.linear,
            "backbone_layers": self.backbone_layers,
            "mixed_memory": self.mixed_memory,
            "shrink": self.shrink,
            "train": self.train_config.to_dict(),
            "n_inputs": len(self.spec["columns"]),
        }

    def save(self, path, *, overwrite: bool = False) -> Path:
        """Save to the folder `path` (safetensors weights, JSON config and metadata)."""
        assert self.net is not None, "fit the model first"
        return save_bundle(
            path, self.net.state_dict(), self.config(), self.metadata(), overwrite=overwrite
        )

    def metadata(self) -> dict:
        return {"spec": self.spec, "scaler": self.scaler.to_dict(), "history": self.history}

    @classmethod
    @hand_edits
    def load(cls, path) -> Forecaster:
        """Load a model saved by `save`; the weights must fit the network the config builds."""
        weights, config, meta = load_bundle(path)
        if config.get("task") != TASK:
            raise ValueError(f"{path}: a {config.get('task')} model, not a forecaster")
        return cls.from_parts(weights, config, meta, source=path)

    @classmethod
    def from_parts(cls, weights: dict, config: dict, meta: dict, *, source="") -> Forecaster:
        """The model that `config()`, `metadata()` and the weights describe."""
        self = cls(
            config["model"], lookback=config["lookback"], horizon=config["horizon"],
            stride=config["stride"], units=config["units"], season=config["season"],
            budget=config["budget"], train=config["train"],
            # models saved before these options existed: the recipe they were trained with
            base=config.get("base", "last"), linear=config.get("linear", False),
            backbone_layers=config.get("backbone_layers"),
            mixed_memory=config.get("mixed_memory", False), shrink=config.get("shrink", False),
        )  # fmt: skip
        self.spec, self.history = meta["spec"], meta.get("history", {})
        self.seasonal = config.get("seasonal")
        self.scaler = Scaler.from_dict(meta["scaler"])
        target_index = [self.spec["columns"].index(t) for t in self.spec["targets"]]
        self.net = self._build(config["n_inputs"], target_index)
        try:
            self.net.load_state_dict(weights, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"{source}: the weights do not fit the model: {exc}") from None
        return self
