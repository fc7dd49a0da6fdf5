"""Metrics for the tasks: forecasting, classification and anomaly detection, and a results table.

Every function takes numpy arrays (or anything `np.asarray` accepts) and returns Python floats,
dicts of them, or a numpy array (`confusion_matrix`). A metric that is undefined on its input
(an R² on a constant column, an AUROC with one class) is `float("nan")`, never an exception, so
that a table of many models can still be printed; `format_table` shows it as "n/a".

Only numpy is needed.

    >>> m = forecast_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 5.0], y_train=[1.0, 2.0, 4.0, 7.0])
    >>> m["mae"], m["mase"]
    (1.0, 0.5)
    >>> print(
    ...     format_table(
    ...         [{"model": "cfc", "mae": m["mae"]}, {"model": "naive", "mae": 2.0}], ["mae"]
    ...     )
    ... )
    | model | mae |
    |---|--:|
    | cfc | 1.000* |
    | naive | 2.000 |
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "forecast_metrics",
    "classification_metrics",
    "confusion_matrix",
    "detection_metrics",
    "events",
    "event_metrics",
    "top1_score",
    "calibrate_threshold",
    "format_table",
]

_NAN = float("nan")

# Which way is better, per metric column of format_table; other columns are not marked.
_LOWER_IS_BETTER = frozenset({"mae", "rmse", "smape", "mase"})
_HIGHER_IS_BETTER = frozenset({"r2", "accuracy", "macro_f1", "auroc", "precision", "recall", "f1",
                               "event_recall", "event_precision", "event_f1", "top1"})  # fmt: skip


# ------------------------------------------------------------------------------------ forecasting


def _as_columns(name: str, value: ArrayLike) -> np.ndarray:
    """`value` as a float64 `(N, n_targets)` array; a flat `(N,)` becomes `(N, 1)`."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{name} must be of shape (N,) or (N, n_targets), got {array.shape}")
    return array


def _seasonal_scale(y_train: Any, season: int, n_targets: int) -> np.ndarray:
    """Per column, the mean |y_t - y_{t-season}| over the training series, `(n_targets,)`.

    A list or tuple of arrays is several series: differences are taken within each one, never
    across the seam between two. Columns with no pair `season` apart get NaN.
    """
    if isinstance(y_train, (list, tuple)) and y_train and all(np.ndim(s) >= 1 for s in y_train):
        series = [_as_columns("y_train", s) for s in y_train]
    else:
        series = [_as_columns("y_train", y_train)]
    total = np.zeros(n_targets)
    count = 0
    for s in series:
        if s.shape[1] != n_targets:
            raise ValueError(
                f"y_train has {s.shape[1]} column(s) but y_true has {n_targets} target(s)"
            )
        if len(s) > season:
            total += np.abs(s[season:] - s[:-season]).sum(axis=0)  # (n_targets,)
            count += len(s) - season
    if count == 0:
        return np.full(n_targets, _NAN)
    return total / count


def _mean_defined(values: np.ndarray) -> float:
    """The mean of the non-NaN entries; NaN when there are none."""
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else _NAN


def forecast_metrics(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    y_train: Any = None,
    season: int = 1,
) -> dict[str, float]:
    """Point-forecast errors: MAE, RMSE, sMAPE, MASE and R².

    With errors `e = y - p` over all `N x n_targets` values:

    - `mae = mean |e|`, `rmse = sqrt(mean e²)`;
    - `smape = 100 * mean(2 |y - p| / (|y| + |p|))` in percent; a term with `|y| + |p| = 0`
      counts 0 (the forecast is exact there) but still counts in the mean;
    - `mase`: per target column, the column's MAE over the in-sample MAE of the seasonal naive
      forecast on `y_train` (`mean |y_t - y_{t-season}|`), averaged over the columns;
    - `r2`: per target column `1 - SSE / SST`, averaged over the columns.

    A forecast that is NaN or infinite anywhere is a failure: every metric is then NaN (never
    a term of 0). A column whose MASE scale or R² total sum of squares is 0 (a constant
    training series, a constant target) has no value; the averages run over the other columns,
    and are NaN when no column has one. MASE is also NaN without `y_train`, or when it has no
    pair of values `season` apart.

    Args:
        y_true: actual values, `(N,)` or `(N, n_targets)`.
        y_pred: forecasts, the same shape.
        y_train: the training series for the MASE scale: `(n,)` or `(n, n_targets)`, or a list
            of such arrays for several series (differences are taken within each series
            only). None (default) for no MASE.
        season: the season length of the naive forecast, `>= 1` (default 1: the last value).

    Returns:
        `{"mae", "rmse", "smape", "mase", "r2"}`, Python floats.

    Example:
        >>> m = forecast_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
        >>> m["mae"], m["r2"]
        (0.6666666666666666, 0.0)
    """
    if isinstance(season, bool) or not isinstance(season, (int, np.integer)) or season < 1:
        raise ValueError(f"season must be an integer >= 1, got {season!r}")
    actual = _as_columns("y_true", y_true)
    predicted = _as_columns("y_pred", y_pred)
    if np.shape(y_true) != np.shape(y_pred):
        raise ValueError(
            f"y_true and y_pred must have the same shape, got {np.shape(y_true)} and "
            f"{np.shape(y_pred)}"
        )
    if actual.size == 0:
        raise ValueError("forecast_metrics needs at least one value, got an empty input")

    if not np.isfinite(predicted).all():  # a model that diverged failed: no score at all
        return dict.fromkeys(("mae", "rmse", "smape", "mase", "r2"), _NAN)
    error = actual - predicted  # (N, n_targets)
    abs_error = np.abs(error)
    denominator = np.abs(actual) + np.abs(predicted)
    # where the denominator is 0, y = p = 0: an exact forecast, a term of 0
    ratio = np.divide(
        2.0 * abs_error, denominator, out=np.zeros_like(abs_error), where=denominator > 0
    )

    mase = _NAN
    if y_train is not None:
        scale = _seasonal_scale(y_train, int(season), actual.shape[1])  # (n_targets,)
        with np.errstate(divide="ignore", invalid="ignore"):
            per_column = np.where(scale > 0, abs_error.mean(axis=0) / scale, _NAN)
        mase = _mean_defined(per_column)

    sse = (error**2).sum(axis=0)  # (n_targets,)
    sst = ((actual - actual.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(sst > 0, 1.0 - sse / sst, _NAN)

    return {
        "mae": float(abs_error.mean()),
        "rmse": float(np.sqrt((error**2).mean())),
        "smape": float(100.0 * ratio.mean()),
        "mase": mase,
        "r2": _mean_defined(r2),
    }


# --------------------------------------------------------------------------------- classification


def _as_labels(name: str, value: ArrayLike, n_classes: int) -> np.ndarray:
    """`value` as a 1-D int64 array of class indices in `[0, n_classes)`."""
    array = np.asarray(value)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {array.shape}")
    # integers and bools as they are; floats only when they hold whole numbers (0.0, 1.0, ...)
    whole = np.issubdtype(array.dtype, np.integer) or array.dtype == bool
    if not whole and array.size:
        whole = np.issubdtype(array.dtype, np.floating) and bool(
            np.all(np.isfinite(array)) and np.all(array % 1 == 0)
        )
        if not whole:
            raise ValueError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if array.size and (array.min() < 0 or array.max() >= n_classes):
        raise ValueError(
            f"{name} holds classes outside [0, {n_classes}): {array.min()}..{array.max()}"
        )
    return array


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values`, tied values sharing the mean of the ranks they span."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts  # 0-based position of each distinct value's first copy
    mean_rank = first + (counts + 1) / 2.0  # mean of the ranks first+1 .. first+count
    return mean_rank[inverse.reshape(-1)]


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC from ranks (the Mann-Whitney U over n_pos * n_neg); NaN with one class only.

    U counts the (positive, negative) pairs in which the positive scores higher, a tie as one
    half; the sum of the positives' ranks is U plus the pairs among the positives themselves.
    """
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return _NAN
    u = _ranks(scores)[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Args:
        y_true: true class indices, `(N,)`, in `[0, n_classes)`.
        y_pred: predicted class indices, `(N,)`, in `[0, n_classes)`.
        n_classes: the number of classes, `>= 1`.

    Returns:
        An int64 array `(n_classes, n_classes)`: rows are true classes, columns predicted ones.

    Example:
        >>> confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], 3)
        array([[1, 0, 0],
               [0, 1, 1],
               [0, 0, 1]])
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)):
        raise ValueError(f"n_classes must be an integer >= 1, got {n_classes!r}")
    if n_classes < 1:
        raise ValueError(f"n_classes must be an integer >= 1, got {n_classes}")
    truth = _as_labels("y_true", y_true, n_classes)
    predicted = _as_labels("y_pred", y_pred, n_classes)
    if truth.shape != predicted.shape:
        raise ValueError(
            f"y_true and y_pred must have the same shape, got {truth.shape} and {predicted.shape}"
        )
    counts = np.bincount(truth * n_classes + predicted, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes).astype(np.int64)


def classification_metrics(y_true: ArrayLike, proba: ArrayLike) -> dict[str, float]:
    """Accuracy, macro F1 and AUROC of class probabilities.

    The predicted class is the argmax of each row. Macro F1 is the mean, over the classes that
    occur in `y_true` or among the predictions, of `F1 = 2 TP / (2 TP + FP + FN)`. AUROC is the
    ROC AUC of `proba[:, 1]` for two classes, else the mean of the one-vs-rest AUCs of the
    classes with both positives and negatives in `y_true`; each AUC is computed from ranks with
    ties averaged (the Mann-Whitney U statistic), so a tie counts one half. AUROC is NaN when no
    class qualifies (a single class in `y_true`). Probabilities that are NaN or infinite
    anywhere (a diverged model) make every metric NaN.

    Args:
        y_true: true class indices, `(N,)`, in `[0, K)`.
        proba: class probabilities `(N, K)` (any scores whose larger values mean "more likely"
            do: rows need not sum to 1).

    Returns:
        `{"accuracy", "macro_f1", "auroc"}`, Python floats.

    Example:
        >>> m = classification_metrics([0, 1, 1], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
        >>> m["accuracy"], m["auroc"]
        (0.6666666666666666, 1.0)
    """
    scores = np.asarray(proba, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] < 1:
        raise ValueError(f"proba must be of shape (N, K), got {scores.shape}")
    n, k = scores.shape
    truth = _as_labels("y_true", y_true, k)
    if truth.shape[0] != n:
        raise ValueError(f"y_true has {truth.shape[0]} rows but proba has {n}")
    if n == 0:
        raise ValueError("classification_metrics needs at least one sample, got an empty input")

    if not np.isfinite(scores).all():  # NaN probabilities: a failed model, not class 0
        return dict.fromkeys(("accuracy", "macro_f1", "auroc"), _NAN)
    predicted = scores.argmax(axis=1)
    matrix = confusion_matrix(truth, predicted, k)
    tp = np.diag(matrix)
    support = matrix.sum(axis=1) + matrix.sum(axis=0)  # 2 TP + FP + FN, per class
    present = support > 0  # in y_true or among the predictions
    macro_f1 = float((2.0 * tp[present] / support[present]).mean())

    if k == 2:
        auroc = _auc(scores[:, 1], truth == 1)
    else:
        aucs = np.array([_auc(scores[:, c], truth == c) for c in range(k)])
        auroc = _mean_defined(aucs)

    return {
        "accuracy": float((predicted == truth).mean()),
        "macro_f1": macro_f1,
        "auroc": auroc,
    }


# -------------------------------------------------------------------------------------- anomalies


def _as_flags(name: str, value: ArrayLike) -> np.ndarray:
    """`value` as a 1-D bool array; only bools and 0/1 are accepted (not scores)."""
    array = np.asarray(value)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of bools, got shape {array.shape}")
    if array.dtype != bool:
        if array.size and not np.all((array == 0) | (array == 1)):
            raise ValueError(f"{name} must hold bools (or 0/1), got other values")
        array = array.astype(bool)
    return array


def detection_metrics(truth: ArrayLike, flagged: ArrayLike) -> dict[str, float]:
    """Precision, recall and F1 of flagged points against the true anomalies.

    Each is 0.0 where it is undefined: precision when nothing is flagged, recall when there is
    no true anomaly, F1 when precision and recall are both 0.

    Args:
        truth: `(N,)` bools, True at the true anomalies.
        flagged: `(N,)` bools, True at the flagged points.

    Returns:
        `{"precision", "recall", "f1"}`, Python floats.

    Example:
        >>> detection_metrics([True, True, False, False], [True, False, True, False])
        {'precision': 0.5, 'recall': 0.5, 'f1': 0.5}
    """
    actual = _as_flags("truth", truth)
    predicted = _as_flags("flagged", flagged)
    if actual.shape != predicted.shape:
        raise ValueError(
            f"truth and flagged must have the same shape, got {actual.shape} and {predicted.shape}"
        )
    tp = int((actual & predicted).sum())
    n_flagged = int(predicted.sum())
    n_true = int(actual.sum())
    precision = tp / n_flagged if n_flagged else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2.0 * tp / (n_flagged + n_true) if tp else 0.0  # = 2PR / (P + R)
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


def events(flags: ArrayLike) -> list[tuple[int, int]]:
    """The contiguous runs of True in `flags`, as `(start, stop)` positions (stop exclusive).

    Example:
        >>> events([0, 1, 1, 0, 0, 1])
        [(1, 3), (5, 6)]
    """
    array = _as_flags("flags", flags).astype(np.int8)
    edges = np.diff(np.concatenate([[0], array, [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _near(flags: np.ndarray, tolerance: int) -> np.ndarray:
    """True where a True of `flags` lies within `tolerance` positions."""
    n = flags.size
    counts = np.concatenate([[0], np.cumsum(flags)])
    at = np.arange(n)
    return counts[np.minimum(n, at + tolerance + 1)] - counts[np.maximum(0, at - tolerance)] > 0


def _groups(series: ArrayLike | None, n: int) -> list[np.ndarray]:
    """Positions of each series: runs of equal `series` values (one run when None)."""
    if series is None:
        return [np.arange(n)]
    ids = np.asarray(series)
    if ids.shape != (n,):
        raise ValueError(f"series must have shape ({n},), got {ids.shape}")
    cuts = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    return np.split(np.arange(n), cuts) if n else []


def event_metrics(
    truth: ArrayLike,
    flagged: ArrayLike,
    *,
    tolerance: int = 10,
    series: ArrayLike | None = None,
) -> dict[str, float]:
    """Event-level recall, precision and F1: runs of points, not points.

    A labelled event is a contiguous run of True in `truth`; a flagged event a contiguous run
    of True in `flagged`. A labelled event is detected when a flag falls inside it or within
    `tolerance` positions of it (a detector that reacts a few readings late, or flags the
    reading after a spike, still finds it). A flagged event is a true positive when it touches
    a labelled event within the same tolerance. Then

    - `event_recall` = detected labelled events / labelled events,
    - `event_precision` = true-positive flagged events / flagged events,
    - `event_f1` = 2 P R / (P + R);

    each 0.0 where it is undefined (no labelled event, no flag, P = R = 0), as in
    `detection_metrics`. `events` and `flagged_events` give the two counts.

    Args:
        truth: `(N,)` bools, True at the labelled anomalies, in time order.
        flagged: `(N,)` bools, True at the flagged points.
        tolerance: positions (readings) a flag may lie before or after an event and still
            count; `>= 0`, default 10.
        series: `(N,)` series index of each point (points of one series together, in time
            order), so that no event and no tolerance reaches across two series; None
            (default) for one series.

    Returns:
        `{"event_recall", "event_precision", "event_f1"}` (floats), `"events"` and
        `"flagged_events"` (ints).

    Example:
        >>> truth = [0, 1, 1, 0, 0, 0, 0, 0, 1, 0]
        >>> flags = [0, 0, 0, 1, 0, 0, 1, 0, 0, 0]
        >>> m = event_metrics(truth, flags, tolerance=1)
        >>> m["event_recall"], m["event_precision"], m["events"], m["flagged_events"]
        (0.5, 0.5, 2, 2)
    """
    actual = _as_flags("truth", truth)
    predicted = _as_flags("flagged", flagged)
    if actual.shape != predicted.shape:
        raise ValueError(
            f"truth and flagged must have the same shape, got {actual.shape} and {predicted.shape}"
        )
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, np.integer)) or tolerance < 0:
        raise ValueError(f"tolerance must be an integer >= 0, got {tolerance!r}")
    n_events = n_detected = n_flagged = n_hits = 0
    for at in _groups(series, actual.size):
        t, f = actual[at], predicted[at]
        near_flag, near_truth = _near(f, int(tolerance)), _near(t, int(tolerance))
        for start, stop in events(t):
            n_events += 1
            n_detected += bool(near_flag[start:stop].any())
        for start, stop in events(f):
            n_flagged += 1
            n_hits += bool(near_truth[start:stop].any())
    recall = n_detected / n_events if n_events else 0.0
    precision = n_hits / n_flagged if n_flagged else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "event_recall": float(recall), "event_precision": float(precision),
        "event_f1": float(f1), "events": n_events, "flagged_events": n_flagged,
    }  # fmt: skip


def top1_score(
    truth: ArrayLike,
    scores: ArrayLike,
    *,
    margin: int = 100,
    series: ArrayLike | None = None,
) -> float:
    """The UCR anomaly archive's score: per series, 1 when its highest-scoring point lies within
    `margin` positions of a labelled anomaly (the archive's series have one labelled range),
    else 0; the mean over the series that have a labelled anomaly (NaN when none has). It needs
    no threshold. Of equal highest scores, the first counts.

    Args:
        truth: `(N,)` bools, True at the labelled anomalies.
        scores: `(N,)` anomaly scores, larger = more anomalous.
        margin: positions either side of the labelled range, `>= 0` (default 100, the
            archive's).
        series: `(N,)` series index of each point, as in `event_metrics`; None for one series.

    Returns:
        A Python float in [0, 1], or NaN.

    Example:
        >>> truth = np.zeros(1000, bool)
        >>> truth[500:510] = True
        >>> scores = np.zeros(1000)
        >>> scores[605] = 1.0  # 96 after the range's last point
        >>> top1_score(truth, scores), top1_score(truth, scores, margin=95)
        (1.0, 0.0)
    """
    actual = _as_flags("truth", truth)
    values = np.asarray(scores, dtype=np.float64)
    if values.shape != actual.shape:
        raise ValueError(
            f"truth and scores must have the same shape, got {actual.shape} and {values.shape}"
        )
    if isinstance(margin, bool) or not isinstance(margin, (int, np.integer)) or margin < 0:
        raise ValueError(f"margin must be an integer >= 0, got {margin!r}")
    hits = []
    for at in _groups(series, actual.size):
        t, v = actual[at], values[at]
        if not t.any():
            continue
        if not np.isfinite(v).any():
            hits.append(0.0)
            continue
        best = int(np.nanargmax(np.where(np.isfinite(v), v, -np.inf)))
        hits.append(float(_near(t, int(margin))[best]))
    return float(np.mean(hits)) if hits else _NAN


def calibrate_threshold(
    scores: ArrayLike, *, quantile: float = 0.99, labels: ArrayLike | None = None
) -> float:
    """A threshold on anomaly scores, calibrated on validation scores.

    A point is flagged when its score is strictly above the threshold. With `labels` holding at
    least one True, the threshold is the distinct score value whose flags have the best F1
    against the labels (of equally good ones, the highest); the lowest score can then never be
    flagged. Otherwise it is the `quantile` of the scores (linear interpolation).

    Args:
        scores: validation anomaly scores, `(N,)`, finite.
        quantile: the quantile used without labels, in `[0, 1]` (default 0.99: about 1% of
            normal points flagged).
        labels: `(N,)` bools, True at the true anomalies; None (default) for none.

    Returns:
        The threshold, a Python float.

    Example:
        >>> calibrate_threshold([0.1, 0.2, 0.3, 0.9, 0.8], labels=[0, 0, 0, 1, 1])
        0.3
        >>> calibrate_threshold([0.0, 1.0, 2.0, 3.0, 4.0], quantile=0.5)
        2.0
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"scores must be a non-empty 1-D array, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("scores must be finite; drop the NaN or infinite scores first")
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    positive = None if labels is None else _as_flags("labels", labels)
    if positive is not None and positive.shape != values.shape:
        raise ValueError(
            f"labels must have the shape of scores {values.shape}, got {positive.shape}"
        )
    if positive is None or not positive.any():
        return float(np.quantile(values, quantile))

    # For threshold distinct[j], the flagged points are those of the distinct values above j:
    # suffix sums of the per-value counts give every candidate's flags at once.
    distinct, inverse = np.unique(values, return_inverse=True)
    inverse = inverse.reshape(-1)
    per_value = np.bincount(inverse, minlength=distinct.size)  # points per distinct value
    positives_per_value = np.bincount(
        inverse, weights=positive.astype(np.float64), minlength=distinct.size
    )
    flagged = np.cumsum(per_value[::-1])[::-1] - per_value  # (n_distinct,) points above j
    tp = np.cumsum(positives_per_value[::-1])[::-1] - positives_per_value
    f1 = 2.0 * tp / (flagged + positive.sum())  # 2 TP / (2 TP + FP + FN)
    best = distinct.size - 1 - int(np.argmax(f1[::-1]))  # the last (highest) of the best
    return float(distinct[best])


# ------------------------------------------------------------------------------------------ table


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _format_cell(value: Any) -> str:
    """4 significant digits for floats, "n/a" for NaN or None, `str` for anything else."""
    if value is None:
        return "n/a"
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "n/a"
        text = f"{float(value):#.4g}"  # '#' keeps trailing zeros: 0.2 -> 0.2000
        return text[:-1] if text.endswith(".") else text  # 1235. -> 1235
    return str(value).replace("|", "\\|")


def format_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], *, title: str | None = None
) -> str:
    """A Markdown pipe table of results, one row per model, the best values marked.

    The first column is always "model" (leave it out of `columns`, or put it first). Floats are
    written with 4 significant digits, NaN and missing values as "n/a". In each known metric
    column the best value is marked with "*" (every row that reaches it): the lowest for
    mae, rmse, smape and mase, the highest for r2, accuracy, macro_f1, auroc, precision, recall
    and f1. Other columns are written as they are, right-aligned like the metrics.

    Args:
        rows: dicts with a "model" key and the metric values.
        columns: the metric columns, in order.
        title: a line written first, then a blank line; None (default) for none.

    Returns:
        The table as a string, lines separated by "\\n", no trailing newline.

    Example:
        >>> rows = [
        ...     {"model": "cfc", "mae": 0.1234, "r2": 0.9},
        ...     {"model": "naive", "mae": 0.3, "r2": float("nan")},
        ... ]
        >>> print(format_table(rows, ["mae", "r2"], title="Test set"))
        Test set
        <BLANKLINE>
        | model | mae | r2 |
        |---|--:|--:|
        | cfc | 0.1234* | 0.9000* |
        | naive | 0.3000 | n/a |
    """
    metric_columns = [c for c in columns if c != "model"]
    best: dict[str, float] = {}
    for column in metric_columns:
        key = column.lower()
        values = [row.get(column) for row in rows]
        finite = [float(v) for v in values if _is_number(v) and math.isfinite(float(v))]
        if finite and key in _LOWER_IS_BETTER:
            best[column] = min(finite)
        elif finite and key in _HIGHER_IS_BETTER:
            best[column] = max(finite)

    lines = [
        "| " + " | ".join(["model", *metric_columns]) + " |",
        "|" + "|".join(["---"] + ["--:"] * len(metric_columns)) + "|",
    ]
    for row in rows:
        cells = [_format_cell(row.get("model"))]
        for column in metric_columns:
            value = row.get(column)
            cell = _format_cell(value)
            if column in best and _is_number(value) and float(value) == best[column]:
                cell += "*"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    if title is not None:
        lines[:0] = [title, ""]
    return "\n".join(lines)
