"""Anomaly detection from forecast residuals.

A one-step forecaster learns what the readings normally do. A reading's score is how far it
lands from its forecast, in units of the typical residual on the validation part: per target
`z = (actual - forecast) / scale`, and the score is `sqrt(mean(z**2))` over the targets. The
threshold is calibrated on the validation part too: the F1-best one when anomaly labels are
given, else a high quantile of the validation scores. A reading is flagged when its score is
above the threshold.

    >>> import numpy as np, pandas as pd
    >>> t = np.arange(600)
    >>> flow = np.sin(t / 10)
    >>> flow[500] += 3.0  # a spike in the test part
    >>> frame = pd.DataFrame({"t": t, "flow": flow})
    >>> det = AnomalyDetector("naive", lookback=8).fit(frame, targets="flow", time="t")
    >>> scores = det.score(frame)
    >>> int(scores.loc[scores["score"].idxmax(), "time"])
    500
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from liquidnets.data import SeriesSet, make_windows
from liquidnets.io import hand_edits, load_bundle, save_bundle
from liquidnets.tasks import metrics as _metrics
from liquidnets.tasks._common import load_like
from liquidnets.tasks.forecast import Forecaster
from liquidnets.train import TrainConfig

TASK = "anomaly"
TRUE = {"1", "1.0", "true", "yes", "anomaly", "y", "t"}


class AnomalyDetector:
    """Scores, thresholds and flags readings: `fit`, `predict` (= `score`), `backtest`,
    `save`, `load`.

    Args:
        model: the forecaster behind the scores (`cfc`, `ltc`, `lstm`, `naive`, ...).
        lookback: input steps per window.
        units, budget, season: as for `Forecaster`.
        quantile: the validation-score quantile used as threshold when there are no labels.
        train: a `TrainConfig`, or keyword arguments of one.
    """

    def __init__(
        self,
        model: str = "cfc",
        *,
        lookback: int = 32,
        units: int = 32,
        budget: int | None = None,
        season: int | None = None,
        quantile: float = 0.99,
        train: TrainConfig | dict | None = None,
    ):
        if not 0 < quantile < 1:
            raise ValueError(f"quantile must be in (0, 1); got {quantile}")
        self.forecaster = Forecaster(
            model, lookback=lookback, horizon=1, units=units, budget=budget, season=season,
            train=train,
        )  # fmt: skip
        self.quantile = quantile
        self.scale: np.ndarray | None = None
        self.threshold: float | None = None

    @property
    def model(self) -> str:
        return self.forecaster.model

    @property
    def net(self):
        return self.forecaster.net

    @property
    def history(self) -> dict:
        return self.forecaster.history

    def _series(self, data, split: bool = True) -> SeriesSet:
        return self.forecaster._series(data, split=split)

    @staticmethod
    def _truth(labels: np.ndarray) -> np.ndarray:
        return np.array([str(v).strip().lower() in TRUE for v in labels], dtype=bool)

    def _scores(self, series: SeriesSet, parts=None) -> dict:
        f = self.forecaster
        w = make_windows(series, f.lookback, 1, 1, parts=parts, scaler=f.scaler)
        predicted = f._unscale(f._forward(w.x, w.dt), series)[:, 0]  # (N, n_targets)
        actual = f._unscale(np.asarray(w.y), series)[:, 0]
        residual = actual - predicted
        out = {"residual": residual, "series": w.series, "end": w.end + 1}
        if self.scale is not None:
            out["score"] = np.sqrt(np.mean((residual / self.scale) ** 2, axis=1))
        if series.labels is not None:
            out["truth"] = self._truth(
                np.array([series.labels[s][e] for s, e in zip(w.series, out["end"], strict=True)])
            )
        out["times"] = np.array(
            [series.times[s][e] for s, e in zip(w.series, out["end"], strict=True)]
        )
        return out

    def fit(
        self,
        data,
        *,
        targets,
        features=None,
        time: str | None = None,
        id: str | None = None,
        label: str | None = None,
        missing: str = "error",
        time_unit=None,
        val: float = 0.15,
        test: float = 0.15,
        train_until=None,
        split_column: str | None = None,
        run_dir: str | Path | None = None,
    ) -> AnomalyDetector:
        """Fit the forecaster on the training part, then the residual scale and the threshold
        on the validation part. `label`: an optional column of known anomalies (1/0,
        true/false, yes/no); it is never an input. `train_until`: where the normal training
        data ends (a time of the time column, or `"rows:N"` for the first N rows; see
        `liquidnets.data.rows_until`): validation is the last `val` of the rows up to it, and
        every reading after it is the test part that `backtest` scores (by default the last
        `test` of the rows). `split_column`: a column saying `train`, `val` or `test` per row
        instead (see `Forecaster.fit`). Returns `self`."""
        series = load_like(
            data,
            {
                "targets": targets, "features": features, "time": time, "id": id,
                "label": label, "missing": missing, "time_unit": time_unit,
                "split_column": split_column,
            },
        )  # fmt: skip
        self.forecaster.fit(
            series, targets=targets, missing=missing, val=val, test=test,
            train_until=train_until, split_column=split_column, run_dir=run_dir,
        )  # fmt: skip
        self.forecaster.spec["label"] = label
        parts = self.forecaster._parts(series)
        valid = self._scores(series, parts["val"])
        spread = np.sqrt(np.mean(valid["residual"] ** 2, axis=0))
        self.scale = np.where(spread > 0, spread, 1.0)
        scores = np.sqrt(np.mean((valid["residual"] / self.scale) ** 2, axis=1))
        labels = valid.get("truth")
        if labels is not None and not labels.any():
            labels = None  # no anomaly in the validation part: fall back to the quantile
        self.threshold = _metrics.calibrate_threshold(scores, quantile=self.quantile, labels=labels)
        return self

    def score(self, data):
        """Every reading that has a full lookback before it: columns `id`, `time`, `score`,
        `flagged` (and `anomaly`, the known label, when the data has the label column)."""
        import pandas as pd

        assert self.threshold is not None, "fit or load the detector first"
        series = self._series(data, split=False)
        s = self._scores(series)
        frame = pd.DataFrame(
            {
                "id": [series.ids[k] for k in s["series"]],
                "time": s["times"],
                "score": s["score"],
                "flagged": s["score"] > self.threshold,
            }
        )
        if "truth" in s:
            frame["anomaly"] = s["truth"]
        return frame

    predict = score

    def backtest(
        self, data=None, *, part: str = "test", tolerance: int = 10, margin: int = 100
    ) -> dict:
        """Scores on the `test` (or `val`) part: every reading after `train_until` when the
        detector was fitted with it, else the last `test` of the rows.

        Returns `{"metrics": {...}, "scores", "flagged", "truth" (or None), "times",
        "threshold", "series"}`. The metrics: always the share of readings flagged; with
        anomaly labels, point-wise precision, recall and F1, the event-level ones of
        `metrics.event_metrics` (a labelled run of readings is found when a flag lies within
        `tolerance` readings of it), and the UCR archive's `top1` (`metrics.top1_score`: is
        the highest score within `margin` readings of a labelled anomaly?)."""
        series = self._series(data)
        s = self._scores(series, self.forecaster._parts(series)[part])
        flagged = s["score"] > self.threshold
        metrics = {"flagged_share": float(flagged.mean()) if len(flagged) else float("nan")}
        truth = s.get("truth")
        if truth is not None:
            metrics.update(_metrics.detection_metrics(truth, flagged))
            metrics.update(
                _metrics.event_metrics(truth, flagged, tolerance=tolerance, series=s["series"])
            )
            metrics["top1"] = _metrics.top1_score(
                truth, s["score"], margin=margin, series=s["series"]
            )
        return {
            "metrics": metrics, "scores": s["score"], "flagged": flagged, "truth": truth,
            "times": s["times"], "threshold": self.threshold, "series": s["series"],
        }  # fmt: skip

    def config(self) -> dict:
        return {**self.forecaster.config(), "task": TASK, "quantile": self.quantile}

    def save(self, path, *, overwrite: bool = False) -> Path:
        """Save to the folder `path`: the forecaster's bundle, with the residual scale and the
        threshold in its metadata."""
        assert self.threshold is not None, "fit the detector first"
        meta = {
            **self.forecaster.metadata(),
            "scale": self.scale.tolist(),
            "threshold": self.threshold,
        }
        weights = self.forecaster.net.state_dict()
        return save_bundle(path, weights, self.config(), meta, overwrite=overwrite)

    @classmethod
    @hand_edits
    def load(cls, path) -> AnomalyDetector:
        """Load a detector saved by `save`."""
        weights, config, meta = load_bundle(path)
        if config.get("task") != TASK:
            raise ValueError(f"{path}: a {config.get('task')} model, not an anomaly detector")
        self = cls(config["model"], lookback=config["lookback"], quantile=config["quantile"])
        self.forecaster = Forecaster.from_parts(weights, config, meta, source=path)
        self.scale = np.asarray(meta["scale"], dtype=np.float64)
        self.threshold = float(meta["threshold"])
        return self
