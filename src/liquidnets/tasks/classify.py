"""Sequence classification: a window of readings in, a class out.

A window's class is the label of its last row (`per="window"`), or the one label of its series
(`per="series"`: every row of a series must carry the same label, and `predict` averages the
class probabilities over all windows of each series).

    >>> import numpy as np, pandas as pd
    >>> t = np.arange(400)
    >>> state = np.where((t // 50) % 2 == 0, "idle", "busy")
    >>> signal = np.where(state == "busy", np.sin(t), 0.1 * np.sin(t / 5))
    >>> frame = pd.DataFrame({"t": t, "vibration": signal, "state": state})
    >>> clf = Classifier("naive", lookback=8).fit(frame, label="state", time="t")
    >>> clf.classes
    ['busy', 'idle']
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from liquidnets.data import DataError, Scaler, SeriesSet, make_windows, split_by_time
from liquidnets.io import load_bundle, save_bundle
from liquidnets.tasks import metrics as _metrics
from liquidnets.tasks import models as _models
from liquidnets.tasks._common import align_columns, load_like, run_net
from liquidnets.train import TrainConfig
from liquidnets.train import fit as _fit

TASK = "classify"


class PriorNet(nn.Module):
    """The `naive` classifier: the training classes' frequencies, whatever the window."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.register_buffer("log_prior", torch.zeros(n_classes))

    def forward(self, x, dt):
        return self.log_prior.expand(x.shape[0], -1)


class Classifier:
    """A classifier over sliding windows: `fit`, `predict`, `predict_proba`, `backtest`,
    `save`, `load`.

    Args:
        model: `cfc`, `ltc`, `cfc-ncp`, `ltc-ncp`, `lstm`, `gru`, or `naive` (the training
            classes' frequencies).
        lookback: input steps per window.
        stride: steps between consecutive training windows.
        units: neurons of a liquid model.
        budget: parameter count an `lstm`/`gru` should match.
        per: `window` (a label per window) or `series` (a label per series).
        train: a `TrainConfig`, or keyword arguments of one (the loss is cross-entropy).
    """

    def __init__(
        self,
        model: str = "cfc",
        *,
        lookback: int = 32,
        stride: int = 1,
        units: int = 32,
        budget: int | None = None,
        per: str = "window",
        train: TrainConfig | dict | None = None,
    ):
        known = (*_models.LIQUID, *_models.RECURRENT, "naive")
        if model not in known:
            raise ValueError(f"unknown model '{model}'; choose one of: {', '.join(known)}")
        if per not in ("window", "series"):
            raise ValueError(f"per must be 'window' or 'series'; got {per!r}")
        if lookback < 1 or stride < 1:
            raise ValueError(f"lookback and stride must be positive; got {lookback}, {stride}")
        self.model, self.lookback, self.stride = model, lookback, stride
        self.units, self.budget, self.per = units, budget, per
        config = train if isinstance(train, TrainConfig) else TrainConfig(**(train or {}))
        config.loss = "cross_entropy"
        self.train_config = config
        self.net: nn.Module | None = None
        self.scaler: Scaler | None = None
        self.classes: list[str] = []
        self.spec: dict = {}
        self.history: dict = {}

    def _series(self, data) -> SeriesSet:
        series = load_like(data, self.spec)
        align_columns(series, self.spec["columns"])
        self._check_labels(series)
        return series

    def _check_labels(self, series: SeriesSet) -> None:
        if series.labels is None:
            raise DataError(f"{series.source}: no label column")
        if self.per == "series":
            for sid, labels in zip(series.ids, series.labels, strict=True):
                if len(set(labels.tolist())) > 1:
                    where = f"series {sid!r}" if sid else "the series (no --id column)"
                    raise DataError(
                        f"{series.source}: the label varies within {where}; use per='window' "
                        "for a label per window"
                    )

    def _build(self, n_inputs: int) -> nn.Module:
        if self.model == "naive":
            return PriorNet(len(self.classes))
        return _models.build(
            self.model, n_inputs=n_inputs, n_outputs=len(self.classes), units=self.units,
            budget=self.budget, seed=self.train_config.seed,
        )  # fmt: skip

    def _indices(self, labels: np.ndarray, source: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes)}
        unknown = sorted({str(v) for v in labels} - set(index))
        if unknown:
            raise DataError(
                f"{source}: label {unknown[0]!r} was not among the training classes {self.classes}"
            )
        return np.array([index[str(v)] for v in labels], dtype=np.int64)

    def fit(
        self,
        data,
        *,
        label: str,
        features=None,
        time: str | None = None,
        id: str | None = None,
        missing: str = "error",
        time_unit=None,
        val: float = 0.15,
        test: float = 0.15,
        run_dir: str | Path | None = None,
    ) -> Classifier:
        """Fit on the training part of every series (by time), stopping early on the
        validation part; the scaler is fitted on training rows only. Returns `self`."""
        self.spec = {
            "targets": [], "features": features, "time": time, "id": id, "label": label,
            "missing": missing, "time_unit": time_unit, "val": val, "test": test,
        }  # fmt: skip
        series = load_like(data, self.spec)
        self._check_labels(series)
        self.spec.update(
            features=[c for c in series.columns if not c.endswith("__missing")],
            time_unit=series.time_unit,
            columns=list(series.columns),
        )
        parts = split_by_time(series, val=val, test=test)
        rows = [v[p] for v, p in zip(series.values, parts["train"], strict=True)]
        self.scaler = Scaler.fit(rows, series.columns)
        train = make_windows(
            series, self.lookback, 0, self.stride, parts=parts["train"], scaler=self.scaler
        )
        self.classes = sorted({str(v) for v in train.label})
        self.net = self._build(len(series.columns))
        y_train = self._indices(train.label, series.source)
        if self.model == "naive":
            counts = np.bincount(y_train, minlength=len(self.classes)) + 1.0
            self.net.log_prior.copy_(torch.as_tensor(np.log(counts / counts.sum())))
            return self
        valid = make_windows(series, self.lookback, 0, 1, parts=parts["val"], scaler=self.scaler)
        y_val = self._indices(valid.label, series.source)
        self.history = _fit(
            self.net, (train.x, train.dt, y_train), (valid.x, valid.dt, y_val),
            self.train_config, run_dir=run_dir,
        )  # fmt: skip
        return self

    def _proba(self, x: np.ndarray, dt: np.ndarray) -> np.ndarray:
        assert self.net is not None, "fit or load the model first"
        logits = torch.as_tensor(run_net(self.net, x, dt, len(self.classes)))
        return torch.softmax(logits, dim=-1).numpy()

    def predict_proba(self, data):
        """Class probabilities: per window (columns `id`, `time` of the window's last row, one
        per class), or with `per="series"` one row per series (averaged over its windows)."""
        import pandas as pd

        series = self._series(data)
        w = make_windows(series, self.lookback, 0, 1, scaler=self.scaler)
        proba = self._proba(w.x, w.dt)
        frame = pd.DataFrame(proba, columns=self.classes)
        frame.insert(0, "time", [series.times[s][e] for s, e in zip(w.series, w.end, strict=True)])
        frame.insert(0, "id", [series.ids[s] for s in w.series])
        if self.per == "series":
            frame = frame.drop(columns="time").groupby("id", sort=False).mean().reset_index()
        return frame

    def predict(self, data):
        """The most probable class, in the layout of `predict_proba` with a `label` column."""
        frame = self.predict_proba(data)
        frame["label"] = frame[self.classes].idxmax(axis=1)
        return frame

    def backtest(self, data=None, *, part: str = "test") -> dict:
        """Classify every window whose last row lies in the `test` (or `val`) part.

        Returns `{"metrics": {"accuracy", "macro_f1", "auroc"}, "confusion": (K, K),
        "proba": (N, K), "truth": (N,), "times": (N,)}`."""
        series = self._series(data)
        parts = split_by_time(series, val=self.spec["val"], test=self.spec["test"])
        w = make_windows(series, self.lookback, 0, 1, parts=parts[part], scaler=self.scaler)
        proba = self._proba(w.x, w.dt)
        truth = self._indices(w.label, series.source)
        return {
            "metrics": _metrics.classification_metrics(truth, proba),
            "confusion": _metrics.confusion_matrix(truth, proba.argmax(1), len(self.classes)),
            "proba": proba,
            "truth": truth,
            "times": np.array([series.times[s][e] for s, e in zip(w.series, w.end, strict=True)]),
        }

    def config(self) -> dict:
        return {
            "task": TASK, "model": self.model, "lookback": self.lookback, "stride": self.stride,
            "units": self.units, "budget": self.budget, "per": self.per,
            "train": self.train_config.to_dict(), "n_inputs": len(self.spec["columns"]),
        }  # fmt: skip

    def save(self, path, *, overwrite: bool = False) -> Path:
        """Save to the folder `path` (safetensors weights, JSON config and metadata)."""
        assert self.net is not None, "fit the model first"
        meta = {
            "spec": self.spec, "scaler": self.scaler.to_dict(), "classes": self.classes,
            "history": self.history,
        }  # fmt: skip
        return save_bundle(path, self.net.state_dict(), self.config(), meta, overwrite=overwrite)

    @classmethod
    def load(cls, path) -> Classifier:
        """Load a classifier saved by `save`."""
        weights, config, meta = load_bundle(path)
        if config.get("task") != TASK:
            raise ValueError(f"{path}: a {config.get('task')} model, not a classifier")
        self = cls(
            config["model"], lookback=config["lookback"], stride=config["stride"],
            units=config["units"], budget=config["budget"], per=config["per"],
            train=config["train"],
        )  # fmt: skip
        self.spec, self.classes = meta["spec"], meta["classes"]
        self.history = meta.get("history", {})
        self.scaler = Scaler.from_dict(meta["scaler"])
        self.net = self._build(config["n_inputs"])
        try:
            self.net.load_state_dict(weights, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"{path}: the weights do not fit the model: {exc}") from None
        return self
