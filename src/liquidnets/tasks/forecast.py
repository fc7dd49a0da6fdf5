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

from liquidnets.data import Scaler, SeriesSet, load_series, make_windows, split_by_time
from liquidnets.io import load_bundle, save_bundle
from liquidnets.tasks import metrics as _metrics
from liquidnets.tasks import models as _models
from liquidnets.tasks._common import align_columns, load_like, run_net
from liquidnets.train import TrainConfig
from liquidnets.train import fit as _fit

TASK = "forecast"


class Forecaster:
    """A forecasting model over sliding windows, in the conventions of darts and
    neuralforecast: `fit`, `predict`, `backtest`, `save`, `load`.

    Args:
        model: one of `liquidnets.tasks.models.MODELS`: `cfc`, `ltc`, `cfc-ncp`, `ltc-ncp`,
            `lstm`, `gru`, `naive`, `seasonal_naive`.
        lookback: input steps per window.
        horizon: steps forecast at once (every target at every step).
        stride: steps between consecutive training windows.
        units: neurons of a liquid model.
        season: the period in steps, for `seasonal_naive` and for MASE.
        budget: parameter count an `lstm`/`gru` should match (see `models.build`).
        train: a `TrainConfig`, or keyword arguments of one.
    """

    def __init__(
        self,
        model: str = "cfc",
        *,
        lookback: int = 32,
        horizon: int = 1,
        stride: int = 1,
        units: int = 32,
        season: int | None = None,
        budget: int | None = None,
        train: TrainConfig | dict | None = None,
    ):
        if model not in _models.MODELS:
            raise ValueError(f"unknown model '{model}'; choose one of: {', '.join(_models.MODELS)}")
        if lookback < 1 or horizon < 1 or stride < 1:
            raise ValueError(
                f"lookback, horizon and stride must be positive; got {lookback}, {horizon}, "
                f"{stride}"
            )
        if model == "seasonal_naive" and not season:
            raise ValueError("seasonal_naive needs season= (the period in steps)")
        self.model = model
        self.lookback, self.horizon, self.stride = lookback, horizon, stride
        self.units, self.season, self.budget = units, season, budget
        self.train_config = (
            train if isinstance(train, TrainConfig) else TrainConfig(**(train or {}))
        )
        self.net: torch.nn.Module | None = None
        self.scaler: Scaler | None = None
        self.spec: dict = {}
        self.history: dict = {}

    # -- data --------------------------------------------------------------------------
    def _series(self, data) -> SeriesSet:
        """`data` read as the model was fitted, in the model's column order."""
        series = load_like(data, self.spec)
        align_columns(series, self.spec["columns"])
        return series

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
        run_dir: str | Path | None = None,
    ) -> Forecaster:
        """Fit on the training part of `data` (a path, a DataFrame or a `SeriesSet`), with early
        stopping on the validation part; the last `test` fraction of every series is left for
        `backtest`. The scaler is fitted on the training rows only. Returns `self`."""
        series = data if isinstance(data, SeriesSet) else load_series(
            data, targets=targets, features=features, time=time, id=id, missing=missing,
            time_unit=time_unit,
        )  # fmt: skip
        self.spec = {
            "targets": list(series.targets),
            "features": [
                c for c in series.columns if c not in series.targets and not c.endswith("__missing")
            ],
            "time": series.time_column,
            "id": series.id_column,
            "missing": missing,
            "time_unit": series.time_unit,
            "columns": list(series.columns),
            "val": val,
            "test": test,
        }
        parts = split_by_time(series, val=val, test=test)
        self.scaler = Scaler.fit(
            [v[p] for v, p in zip(series.values, parts["train"])], series.columns
        )
        self.net = self._build(len(series.columns), series.target_index)
        if self.model in _models.NAIVE:
            self.history = {}
            return self
        train = self._arrays(series, parts["train"], self.stride)
        valid = self._arrays(series, parts["val"], 1)
        self.history = _fit(self.net, train, valid, self.train_config, run_dir=run_dir)
        return self

    def _build(self, n_inputs: int, target_index: list[int]) -> torch.nn.Module:
        net = _models.build(
            self.model, n_inputs=n_inputs, n_outputs=self.horizon * len(target_index),
            units=self.units, target_index=target_index, horizon=self.horizon,
            season=self.season or 1, budget=self.budget, seed=self.train_config.seed,
        )  # fmt: skip
        if self.model in _models.NAIVE:
            return net
        return _models.FromLastValue(net, target_index, self.horizon)

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

    def predict(self, data):
        """Forecast the `horizon` steps after the end of every series in `data`.

        Returns a DataFrame with columns `id`, `step` (1..horizon), `time` (the forecast time,
        extrapolated with the median step; a row position without a time column) and one
        column per target."""
        import pandas as pd

        series = self._series(data)
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
        seasonal when `season` is set) and R²."""
        series = self._series(data)
        parts = split_by_time(series, val=self.spec["val"], test=self.spec["test"])
        w = make_windows(
            series, self.lookback, self.horizon, 1, parts=parts[part], scaler=self.scaler
        )
        predicted = self._unscale(self._forward(w.x, w.dt), series)
        actual = self._unscale(w.y, series)
        train_targets = [
            v[p][:, series.target_index] for v, p in zip(series.values, parts["train"])
        ]
        scores = _metrics.forecast_metrics(
            actual.reshape(-1, actual.shape[-1]), predicted.reshape(-1, predicted.shape[-1]),
            y_train=train_targets, season=self.season or 1,
        )  # fmt: skip
        times = np.array([series.times[s][e + 1] for s, e in zip(w.series, w.end)])
        return {
            "metrics": scores,
            "times": times,
            "actual": actual,
            "predicted": predicted,
            "series": w.series,
        }

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
        )  # fmt: skip
        self.spec, self.history = meta["spec"], meta.get("history", {})
        self.scaler = Scaler.from_dict(meta["scaler"])
        target_index = [self.spec["columns"].index(t) for t in self.spec["targets"]]
        self.net = self._build(config["n_inputs"], target_index)
        try:
            self.net.load_state_dict(weights, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"{source}: the weights do not fit the model: {exc}") from None
        return self
