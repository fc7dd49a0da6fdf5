"""Sequence classification: a window of readings in, a class out, or a whole series in, its
class out.

With `per="window"` a window's class is the label of its last row, and the rows of every
series are split by time. With `per="series"` every row of a series (`id=`) carries the one
label of the series, and the series is classified whole: series of different lengths are
padded into one batch and masked (the layers hold their state over the padding), and the head
reads each one's outputs over its real steps only. The split is then by whole series,
stratified by class, and metrics count series.

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

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from liquidnets.data import (
    DataError,
    Scaler,
    SeriesSet,
    make_windows,
    pad_series,
    split_by_series,
)
from liquidnets.io import hand_edits, load_bundle, save_bundle
from liquidnets.tasks import metrics as _metrics
from liquidnets.tasks import models as _models
from liquidnets.tasks._common import align_columns, load_like, run_net, split_rows
from liquidnets.train import TrainConfig
from liquidnets.train import fit as _fit

TASK = "classify"


class PriorNet(nn.Module):
    """The `naive` classifier: the training classes' frequencies, whatever the window."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.register_buffer("log_prior", torch.zeros(n_classes))

    def forward(self, x, dt, mask=None):
        return self.log_prior.expand(x.shape[0], -1)


# The recipe of per="series" (whole series), chosen by 3-fold cross-validation on the
# training series of the six UCR/UEA sets of benchmarks/quality_classify.py (their test
# series never used): patches of rows so that the longest training series is read in at
# most 16 steps, 64 convolution filters over the rows inside each patch (mean CV accuracy
# 0.723 without them, 0.730 / 0.773 / 0.803 with 16 / 32 / 64, one member), 64 units
# without a backbone, the mean and the maximum of the outputs over time, small batches and
# enough epochs for sets of a few dozen series, and three members from different seeds whose
# class probabilities are averaged, each stopped early on its own validation series (0.841;
# 0.819 when all three validate on the same series), and the stem's second convolution
# dilated by 2 (0.853 against 0.849 undilated, re-run on the same code).
SERIES = {
    "units": 64, "backbone_layers": 0, "pool": "mean+max", "max_steps": 16, "ensemble": 3,
    "stem": 64, "dilation": 2, "cross_fit": True,
}  # fmt: skip
WINDOW = {"units": 32, "backbone_layers": None, "pool": "last", "ensemble": 1, "stem": None}
SERIES_TRAIN = {"batch_size": 16, "max_epochs": 200, "patience": 30}
AUTO = "auto"


class Classifier:
    """A classifier of windows or of whole series: `fit`, `predict`, `predict_proba`,
    `backtest`, `save`, `load`.

    With `per="series"` each series is one sample, read whole: every `downsample` rows
    (`ceil(longest training series / max_steps)`) form one step, their values side by side
    (a patch; see `liquidnets.data.pad_series`), series of different lengths are padded and
    masked, and the head reads the outputs pooled over each series' real steps. The default
    recipe for it (`SERIES`, `SERIES_TRAIN`) was chosen by cross-validation on the training
    series of public UCR/UEA sets; `benchmarks/quality_classify.py` measures it against
    MiniRocket on their test series.

    Args:
        model: `cfc`, `ltc`, `cfc-ncp`, `ltc-ncp`, `lstm`, `gru`, or `naive` (the training
            classes' frequencies).
        lookback: input steps per window (`per="window"`; whole series have no lookback).
        stride: steps between consecutive training windows (`per="window"`).
        units: neurons of a liquid model (None: 32 per window, 64 per series).
        budget: parameter count an `lstm`/`gru` should match.
        per: `window` (a label per window, its last row's) or `series` (a label per series,
            each series classified whole).
        max_steps: with `per="series"`, the most steps the longest training series is read
            in (default 16); None: a step per row.
        reduce: how `downsample` rows make a step: `patch` (their values side by side,
            default) or `mean`.
        pool: what the head reads (see `models.LiquidNet`; None: `last` per window,
            `mean+max` per series).
        backbone_layers: the CfC's backbone depth (`"auto"`: ncps's 1 x 128 per window,
            none per series; see `models.LiquidNet`).
        mixed_memory: an LSTM memory beside the liquid cell.
        ensemble: members trained apart from seeds `seed, seed + 1, ...` whose class
            probabilities are averaged (see `models.Ensemble`); an `lstm`/`gru` member gets
            its share of `budget`. None: 1 per window, 3 per series.
        stem: with `per="series"`, the number of filters of two convolutions over the rows
            inside the patches, whose per-patch maxima the liquid layer reads instead of the
            raw rows (see `models.PatchConv`; an `lstm`/`gru` gets the same stem); None: the
            raw rows. `"auto"`: 64 per series, None per window.
        cross_fit: with `per="series"` and `ensemble > 1`, each member validates (stops
            early) on its own draw of the training series, and trains on the rest; the test
            series are the same for all. None: on per series, off per window.
        dilation: the stem's second convolution reads every `dilation`-th row (see
            `models.PatchConv`). None: 2 per series (models saved before it: 1).
        augment: with `per="series"`, this many extra copies of every training series, each
            with its first row repeated 0 to `downsample - 1` times in front, so that the
            patch borders fall elsewhere (nothing is cut). None: 0. By cross-validation on
            the training series it helped the sets of long series (ArrowHead +8 points,
            OSULeaf +1) and hurt others (ACSF1 -6, PickupGestureWiimoteZ -6), so it is off
            by default.
        train: a `TrainConfig`, or keyword arguments of one (the loss is cross-entropy);
            per series, unset `batch_size`, `max_epochs` and `patience` default to 16, 200
            and 30.
    """

    def __init__(
        self,
        model: str = "cfc",
        *,
        lookback: int = 32,
        stride: int = 1,
        units: int | None = None,
        budget: int | None = None,
        per: str = "window",
        max_steps: int | None = SERIES["max_steps"],
        reduce: str = "patch",
        pool: str | None = None,
        backbone_layers: int | str | None = AUTO,
        mixed_memory: bool = False,
        ensemble: int | None = None,
        stem: int | str | None = AUTO,
        cross_fit: bool | None = None,
        dilation: int | None = None,
        augment: int | None = None,
        train: TrainConfig | dict | None = None,
    ):
        known = (*_models.LIQUID, *_models.RECURRENT, "naive")
        if model not in known:
            raise ValueError(f"unknown model '{model}'; choose one of: {', '.join(known)}")
        if per not in ("window", "series"):
            raise ValueError(f"per must be 'window' or 'series'; got {per!r}")
        if lookback < 1 or stride < 1:
            raise ValueError(f"lookback and stride must be positive; got {lookback}, {stride}")
        if max_steps is not None and (isinstance(max_steps, bool) or max_steps < 1):
            raise ValueError(f"max_steps must be a positive number or None; got {max_steps!r}")
        if reduce not in ("patch", "mean"):
            raise ValueError(f"reduce must be 'patch' or 'mean'; got {reduce!r}")
        if ensemble is not None and (isinstance(ensemble, bool) or ensemble < 1):
            raise ValueError(f"ensemble must be a positive number of members; got {ensemble!r}")
        whole = per == "series"
        recipe = SERIES if whole else WINDOW
        units = recipe["units"] if units is None else units
        self.ensemble = int(recipe["ensemble"] if ensemble is None else ensemble)
        pool = recipe["pool"] if pool is None else pool
        _models.check_pool(pool)
        if backbone_layers == AUTO:
            backbone_layers = recipe["backbone_layers"]
        if stem == AUTO:
            stem = recipe.get("stem")
        if stem is not None and (isinstance(stem, bool) or int(stem) < 1 or not whole):
            raise ValueError(
                f"stem (convolution filters over the rows of whole series) must be a positive "
                f"number, and needs per='series'; got {stem!r} with per={per!r}"
            )
        self.stem = None if stem is None else int(stem)
        dilation = recipe.get("dilation", 1) if dilation is None else dilation
        self.dilation = _models.check_dilation(dilation)  # refused here, before any fitting
        self.augment = int(recipe.get("augment", 0) if augment is None else augment)
        self.cross_fit = bool(recipe.get("cross_fit", False) if cross_fit is None else cross_fit)
        self.model, self.lookback, self.stride = model, lookback, stride
        self.units, self.budget, self.per = units, budget, per
        self.max_steps, self.reduce = max_steps, reduce
        self.pool, self.backbone_layers, self.mixed_memory = pool, backbone_layers, mixed_memory
        # whole series per sample; False only for per-series models saved before, which
        # averaged the class probabilities over the windows of each series
        self.whole = whole
        self.downsample = 1  # rows per step, fitted with per="series"
        if isinstance(train, TrainConfig):
            config = train
        else:
            given = {k: v for k, v in (train or {}).items() if v is not None}  # None: unset
            config = TrainConfig(**{**(SERIES_TRAIN if whole else {}), **given})
        config.loss = "cross_entropy"
        self.train_config = config
        self.net: nn.Module | None = None
        self.scaler: Scaler | None = None
        self.classes: list[str] = []
        self.spec: dict = {}
        self.history: dict = {}

    def _series(self, data, split: bool = True) -> SeriesSet:
        series = load_like(data, self.spec, split=split)
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

    def _build(self, n_columns: int) -> nn.Module:
        """The network over `n_columns` data columns: one, or an `Ensemble` of `ensemble`
        members (untrained)."""
        if self.model == "naive":
            return PriorNet(len(self.classes))
        members = [self._member(n_columns, k) for k in range(self.ensemble)]
        return members[0] if self.ensemble == 1 else _models.Ensemble(members)

    def _member(self, n_columns: int, k: int) -> nn.Module:
        """Member `k`: seeded `seed + k`, sized to its share of the budget; each step of a
        whole series holds `downsample` rows of the columns with patches."""
        width = n_columns * (self.downsample if self.whole and self.reduce == "patch" else 1)
        budget = None if self.budget is None else max(1, self.budget // self.ensemble)
        stem = None
        if self.stem is not None:
            rows = self.downsample if self.reduce == "patch" else 1
            stem = {
                "channels": n_columns, "rows": rows, "filters": self.stem,
                "dilation": self.dilation,
            }  # fmt: skip
        return _models.build(
            self.model, n_inputs=width, n_outputs=len(self.classes), units=self.units,
            budget=budget, seed=self.train_config.seed + k, pool=self.pool,
            backbone_layers=self.backbone_layers, mixed_memory=self.mixed_memory, stem=stem,
        )  # fmt: skip

    def _train(self, n_columns: int, data, run_dir) -> None:
        """Train the network (every member apart, from its own seed, on `data(k) = (train,
        valid)`, stopping early on `valid`; the first one's logs go to `run_dir`)."""
        members, histories = [], []
        for k in range(self.ensemble):
            config = dataclasses.replace(self.train_config, seed=self.train_config.seed + k)
            net = self._member(n_columns, k)
            train, valid = data(k)
            histories.append(_fit(net, train, valid, config, run_dir=None if k else run_dir))
            members.append(net)
        self.net = members[0] if self.ensemble == 1 else _models.Ensemble(members)
        self.history = histories[0]
        if self.ensemble > 1:
            self.history = {**histories[0], "members": histories}

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
        split_column: str | None = None,
        run_dir: str | Path | None = None,
    ) -> Classifier:
        """Fit on the training part, stopping early on the validation part; the scaler is
        fitted on training rows only. Returns `self`.

        The parts: with `per="window"`, the rows of every series by time (`val` and `test`
        fractions); with `per="series"`, whole series, stratified by class. `split_column`
        names a column that says `train`, `val` or `test` instead: per row (`per="window"`,
        see `liquidnets.data.split_by_column`) or per series (`per="series"`, every row of a
        series the same; without `val` series, validation is a `val` fraction of each class's
        training series)."""
        self.spec = {
            "targets": [], "features": features, "time": time, "id": id, "label": label,
            "missing": missing, "time_unit": time_unit, "val": val, "test": test,
            "split_column": split_column,
        }  # fmt: skip
        series = load_like(data, self.spec)
        self._check_labels(series)
        self.spec.update(
            features=[c for c in series.columns if not c.endswith("__missing")],
            time=series.time_column,  # as the series were read, also when given a SeriesSet
            id=series.id_column,
            time_unit=series.time_unit,
            columns=list(series.columns),
        )
        if self.whole:
            return self._fit_series(series, run_dir)
        parts = split_rows(series, self.spec)
        rows = [v[p] for v, p in zip(series.values, parts["train"], strict=True)]
        self.scaler = Scaler.fit(rows, series.columns)
        train = make_windows(
            series, self.lookback, 0, self.stride, parts=parts["train"], scaler=self.scaler
        )
        self.classes = sorted({str(v) for v in train.label})
        y_train = self._indices(train.label, series.source)
        if self.model == "naive":
            return self._fit_prior(y_train)
        valid = make_windows(series, self.lookback, 0, 1, parts=parts["val"], scaler=self.scaler)
        y_val = self._indices(valid.label, series.source)
        data = ((train.x, train.dt, y_train), (valid.x, valid.dt, y_val))
        self._train(len(series.columns), lambda k: data, run_dir)
        return self

    def _fit_prior(self, y_train: np.ndarray) -> Classifier:
        self.net = PriorNet(len(self.classes))
        counts = np.bincount(y_train, minlength=len(self.classes)) + 1.0
        self.net.log_prior.copy_(torch.as_tensor(np.log(counts / counts.sum())))
        return self

    def _series_parts(self, series: SeriesSet, member: int = 0) -> dict[str, list[int]]:
        """The parts of the series; with `cross_fit`, member `k` validates on its own draw
        of the training series (the test series are the same for every member)."""
        seed = self.train_config.seed
        val_seed = seed + 1 + (member if self.cross_fit else 0)
        return split_by_series(
            series, val=self.spec["val"], test=self.spec["test"], seed=seed, val_seed=val_seed
        )

    def _fit_series(self, series: SeriesSet, run_dir) -> Classifier:
        parts = self._series_parts(series)
        self.scaler = Scaler.fit([series.values[i] for i in parts["train"]], series.columns)
        labels = np.array([str(v[0]) for v in series.labels], dtype=object)  # one per series
        self.classes = sorted(set(labels[parts["train"]]))
        longest = max(len(series.values[i]) for i in parts["train"])
        self.downsample = math.ceil(longest / self.max_steps) if self.max_steps else 1
        if self.model == "naive":
            return self._fit_prior(self._indices(labels[parts["train"]], series.source))

        def data(k: int):
            own = self._series_parts(series, k) if k else parts
            out = []
            for index in (own["train"], own["val"]):
                arrays = pad_series(series, index, self.scaler, self.downsample, self.reduce)
                out.append((*arrays, self._indices(labels[index], series.source)))
            if self.augment:
                rng = np.random.default_rng(self.train_config.seed + 1000 + k)
                index = [i for i in own["train"] for _ in range(self.augment)]
                crops = _crops(series, index, rng, self.downsample)
                arrays = pad_series(crops, None, self.scaler, self.downsample, self.reduce)
                y = np.concatenate([out[0][3], self._indices(labels[index], series.source)])
                x, dt, mask = (_stack(a, b) for a, b in zip(out[0][:3], arrays, strict=True))
                out[0] = (x, dt, mask, y)
            return tuple(out)

        self._train(len(series.columns), data, run_dir)
        return self

    def _proba(self, x: np.ndarray, dt: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        assert self.net is not None, "fit or load the model first"
        logits = torch.as_tensor(run_net(self.net, x, dt, len(self.classes), mask))
        return torch.softmax(logits, dim=-1).numpy()

    def _series_proba(self, series: SeriesSet, index) -> np.ndarray:
        """Class probabilities of whole series, `(len(index), n_classes)`."""
        if not len(index):
            return np.zeros((0, len(self.classes)), np.float32)
        return self._proba(*pad_series(series, index, self.scaler, self.downsample, self.reduce))

    def predict_proba(self, data):
        """Class probabilities: per window (columns `id`, `time` of the window's last row, one
        per class), or with `per="series"` one row per series (columns `id` and the classes)."""
        import pandas as pd

        series = self._series(data, split=False)
        if self.whole:
            index = list(range(len(series)))
            frame = pd.DataFrame(self._series_proba(series, index), columns=self.classes)
            frame.insert(0, "id", list(series.ids))
            return frame
        w = make_windows(series, self.lookback, 0, 1, scaler=self.scaler)
        proba = self._proba(w.x, w.dt)
        frame = pd.DataFrame(proba, columns=self.classes)
        frame.insert(0, "time", [series.times[s][e] for s, e in zip(w.series, w.end, strict=True)])
        frame.insert(0, "id", [series.ids[s] for s in w.series])
        if self.per == "series":  # a per-series model saved before: the mean over windows
            frame = frame.drop(columns="time").groupby("id", sort=False).mean().reset_index()
        return frame

    def predict(self, data):
        """The most probable class, in the layout of `predict_proba` with a `label` column."""
        frame = self.predict_proba(data)
        frame["label"] = frame[self.classes].idxmax(axis=1)
        return frame

    def backtest(self, data=None, *, part: str = "test") -> dict:
        """Classify the `test` (or `val`) part: every window whose last row lies in it, or
        with `per="series"` every series in it (the metrics count series).

        Returns `{"metrics": {"accuracy", "macro_f1", "auroc"}, "confusion": (K, K),
        "proba": (N, K), "truth": (N,), "times": (N,)}`; for whole series `"ids"` (N,) in
        place of `"times"`."""
        series = self._series(data)
        if self.whole:
            index = self._series_parts(series)[part]
            if not index:
                raise DataError(f"{series.source}: no {part} series to classify")
            proba = self._series_proba(series, index)
            truth = self._indices(np.array([series.labels[i][0] for i in index]), series.source)
            extra = {"ids": np.array([series.ids[i] for i in index], dtype=object)}
        else:
            parts = split_rows(series, self.spec)
            w = make_windows(series, self.lookback, 0, 1, parts=parts[part], scaler=self.scaler)
            proba = self._proba(w.x, w.dt)
            truth = self._indices(w.label, series.source)
            times = [series.times[s][e] for s, e in zip(w.series, w.end, strict=True)]
            extra = {"times": np.array(times)}
        return {
            "metrics": _metrics.classification_metrics(truth, proba),
            "confusion": _metrics.confusion_matrix(truth, proba.argmax(1), len(self.classes)),
            "proba": proba,
            "truth": truth,
            **extra,
        }

    def config(self) -> dict:
        return {
            "task": TASK, "model": self.model, "lookback": self.lookback, "stride": self.stride,
            "units": self.units, "budget": self.budget, "per": self.per,
            "whole_series": self.whole, "max_steps": self.max_steps,
            "downsample": self.downsample, "reduce": self.reduce, "pool": self.pool,
            "backbone_layers": self.backbone_layers, "mixed_memory": self.mixed_memory,
            "ensemble": self.ensemble, "stem": self.stem, "cross_fit": self.cross_fit,
            "dilation": self.dilation, "augment": self.augment,
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
    @hand_edits
    def load(cls, path) -> Classifier:
        """Load a classifier saved by `save`. A per-series model saved before whole series
        were classified keeps its recipe: windows split by time, their class probabilities
        averaged per series."""
        weights, config, meta = load_bundle(path)
        if config.get("task") != TASK:
            raise ValueError(f"{path}: a {config.get('task')} model, not a classifier")
        self = cls(
            config["model"], lookback=config["lookback"], stride=config["stride"],
            units=config["units"], budget=config["budget"], per=config["per"],
            max_steps=config.get("max_steps"), reduce=config.get("reduce", "patch"),
            train=config["train"],
            # models saved before these options existed: the recipe they were trained with
            pool=config.get("pool", "last"), backbone_layers=config.get("backbone_layers"),
            mixed_memory=config.get("mixed_memory", False), ensemble=config.get("ensemble", 1),
            stem=config.get("stem"), cross_fit=config.get("cross_fit", False),
            dilation=config.get("dilation", 1), augment=config.get("augment", 0),
        )  # fmt: skip
        self.whole = config.get("whole_series", False)
        self.downsample = config.get("downsample", 1)
        self.spec, self.classes = meta["spec"], meta["classes"]
        self.history = meta.get("history", {})
        self.scaler = Scaler.from_dict(meta["scaler"])
        self.net = self._build(config["n_inputs"])
        try:
            self.net.load_state_dict(weights, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"{path}: the weights do not fit the model: {exc}") from None
        return self


AUGMENT = {"mode": "shift", "fraction": 0.1}


def _crops(series: SeriesSet, index, rng: np.random.Generator, patch: int):
    """The series `index` (repeats allowed), each changed a little at random: with mode
    `crop`, a `fraction` at most cut from its start and from its end (window slicing, Le
    Guennec et al., 2016); with `shift`, its first row repeated 0 to `patch - 1` times in
    front, so that the patches' borders fall elsewhere and nothing is lost."""
    values, dt = [], []
    for i in index:
        v, d = series.values[i], series.dt[i]
        n = len(v)
        if AUGMENT["mode"] == "crop":
            cut = int(AUGMENT["fraction"] * n)
            a, b = rng.integers(0, cut + 1, size=2)
            values.append(v[a : n - b])
            dt.append(d[a : n - b])
        else:
            r = int(rng.integers(0, max(patch, 1)))
            values.append(np.concatenate([np.repeat(v[:1], r, axis=0), v]))
            dt.append(np.concatenate([np.repeat(d[:1], r), d]))
    return dataclasses.replace(series, values=values, dt=dt)


def _stack(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`a` and `b` along the first axis, the shorter padded with zeros along the second."""
    steps = max(a.shape[1], b.shape[1])
    pad = [np.pad(v, [(0, 0), (0, steps - v.shape[1])] + [(0, 0)] * (v.ndim - 2)) for v in (a, b)]
    return np.concatenate(pad)
