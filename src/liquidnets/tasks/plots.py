"""Plots for the tasks, written as PNG files: forecasts, residuals, anomalies, training, confusion.

matplotlib is imported inside the functions, so the rest of the package does not need it. The
figures are drawn on matplotlib's Agg canvas directly (`Figure` + `FigureCanvasAgg`), without
pyplot: no display is needed, the global backend of the caller (a notebook, a GUI) is left as
it is, and no figure is registered with pyplot, so none stays open across calls.

Each file is written atomically: the PNG goes to a new hidden temporary file in the target's
folder, which then replaces the target (`os.replace`). A reader never sees half a file, and no
file but the target is ever overwritten. Every function returns the `pathlib.Path` it wrote.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = plot_training(Path(folder) / "loss.png", {"train_loss": [1.0, 0.5, 0.3]})
    ...     path.name, path.read_bytes()[:4] == bytes([0x89]) + b"PNG"
    ('loss.png', True)
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["plot_forecast", "plot_residuals", "plot_anomalies", "plot_training", "plot_confusion"]

PathLike = str | os.PathLike[str]

_DPI = 110
_WIDTH = 10.0  # inches
_ROW_HEIGHT = 2.6  # inches per subplot row


# ---------------------------------------------------------------------------------------- helpers


def _new_figure(rows: int, cols: int, *, height: float | None = None, **kwargs: Any) -> Any:
    """A figure on an Agg canvas (no pyplot) and its axes, always as a `(rows, cols)` array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(_WIDTH, height or _ROW_HEIGHT * rows + 0.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, cols, squeeze=False, **kwargs)
    return figure, axes


def _target(path: PathLike) -> Path:
    """`path` as a Path, checked before any drawing: it must name a .png file."""
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise ValueError(f"plots are written as PNG: the path must end in .png, got {target}")
    return target


def _save(figure: Any, target: Path) -> Path:
    """Write `figure` as a PNG at `target`, atomically, then release the figure.

    The temporary file is created with O_EXCL, so an existing file is never opened, let alone
    overwritten; it has the permissions of a normally created file (0o666 less the umask).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        temporary = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue
    try:
        with os.fdopen(fd, "wb") as file:
            figure.savefig(file, format="png", dpi=_DPI)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    finally:
        figure.clear()  # drop the artists now rather than at the next garbage collection
    return target


def _columns(name: str, value: ArrayLike, n: int | None = None) -> np.ndarray:
    """`value` as a float `(N, k)` array (a flat `(N,)` becomes `(N, 1)`), N checked against n."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{name} must be of shape (N,) or (N, k), got {np.shape(value)}")
    if n is not None and array.shape[0] != n:
        raise ValueError(f"{name} has {array.shape[0]} rows but times has {n}")
    return array


def _times(times: ArrayLike | None, n: int) -> np.ndarray:
    """The x values: `times` as a 1-D array of length n (datetime64 or numbers), or 0..n-1."""
    if times is None:
        return np.arange(n)
    array = np.asarray(times)
    if array.ndim != 1 or array.shape[0] != n:
        raise ValueError(f"times must be 1-D with {n} entries, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.datetime64) or np.issubdtype(array.dtype, np.number)):
        raise ValueError(f"times must be datetime64 or numbers, got dtype {array.dtype}")
    return array


def _format_time_axis(axis: Any, times: np.ndarray) -> None:
    """Short date labels on a datetime axis (matplotlib's default ones overlap)."""
    if np.issubdtype(times.dtype, np.datetime64):
        import matplotlib.dates as mdates

        locator = mdates.AutoDateLocator()
        axis.xaxis.set_major_locator(locator)
        axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _names(argument: str, given: Sequence[str] | None, k: int, default: list[str]) -> list[str]:
    """The k names in `given`, checked, or `default` when None."""
    if given is None:
        return default
    names = [str(name) for name in given]
    if len(names) != k:
        raise ValueError(f"{argument} has {len(names)} names but the data has {k}")
    return names


def _target_names(given: Sequence[str] | None, k: int) -> list[str]:
    default = ["target"] if k == 1 else [f"target {i}" for i in range(k)]
    return _names("target_names", given, k, default)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """The `(first, last)` indices of each run of consecutive True values."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))  # starts and one-past-ends, alternating
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def _x_numbers(times: np.ndarray) -> np.ndarray:
    """`times` as the floats matplotlib plots (days since its epoch for datetime64)."""
    if np.issubdtype(times.dtype, np.datetime64):
        import matplotlib.dates as mdates

        return np.asarray(mdates.date2num(times), dtype=np.float64)
    return times.astype(np.float64)


# ------------------------------------------------------------------------------------------ plots


def plot_forecast(
    path: PathLike,
    times: ArrayLike | None,
    actual: ArrayLike,
    predicted: ArrayLike,
    *,
    title: str = "",
    target_names: Sequence[str] | None = None,
    lower: ArrayLike | None = None,
    upper: ArrayLike | None = None,
) -> Path:
    """Actual against predicted values over time, one subplot per target column.

    NaN values (say, before the first forecast) leave gaps in the lines.

    Args:
        path: the PNG file to write (its folder is created if needed).
        times: `(N,)` datetime64 or numbers; None for 0..N-1.
        actual: `(N,)` or `(N, n_targets)`.
        predicted: the same shape as `actual`.
        title: the figure title; "" (default) for none.
        target_names: one name per target column; None for "target 0", "target 1", ...
        lower: the lower edge of an uncertainty band, the shape of `predicted`; give both
            `lower` and `upper`, or neither (default).
        upper: the upper edge of the band.

    Returns:
        `path`, as a `pathlib.Path`.
    """
    target = _target(path)
    real = _columns("actual", actual)
    forecast = _columns("predicted", predicted, real.shape[0])
    if np.shape(actual) != np.shape(predicted):
        raise ValueError(
            f"actual and predicted must have the same shape, got {np.shape(actual)} and "
            f"{np.shape(predicted)}"
        )
    if (lower is None) != (upper is None):
        raise ValueError("give both lower and upper for an uncertainty band, or neither")
    band = None
    if lower is not None and upper is not None:
        if np.shape(lower) != np.shape(predicted) or np.shape(upper) != np.shape(predicted):
            raise ValueError(
                f"lower and upper must have the shape of predicted {np.shape(predicted)}, got "
                f"{np.shape(lower)} and {np.shape(upper)}"
            )
        band = (_columns("lower", lower), _columns("upper", upper))
    x = _times(times, real.shape[0])
    names = _target_names(target_names, real.shape[1])

    figure, axes = _new_figure(real.shape[1], 1, sharex=True)
    for j, axis in enumerate(axes[:, 0]):
        axis.plot(x, real[:, j], color="black", linewidth=1.2, label="actual")
        axis.plot(x, forecast[:, j], color="tab:blue", linewidth=1.2, label="predicted")
        if band is not None:
            axis.fill_between(
                x, band[0][:, j], band[1][:, j], color="tab:blue", alpha=0.2, label="band"
            )
        axis.set_ylabel(names[j])
        axis.grid(alpha=0.3)
        _format_time_axis(axis, x)
    axes[0, 0].legend(loc="best", fontsize="small")
    if title:
        figure.suptitle(title)
    return _save(figure, target)


def plot_residuals(
    path: PathLike,
    times: ArrayLike | None,
    residuals: ArrayLike,
    *,
    title: str = "",
    target_names: Sequence[str] | None = None,
) -> Path:
    """Residuals over time (left) and their histogram (right), one row per target.

    Args:
        path: the PNG file to write (its folder is created if needed).
        times: `(N,)` datetime64 or numbers; None for 0..N-1.
        residuals: `(N,)` or `(N, n_targets)`, e.g. actual - predicted; NaN values are skipped.
        title: the figure title; "" (default) for none.
        target_names: one name per target column; None for "target 0", "target 1", ...

    Returns:
        `path`, as a `pathlib.Path`.
    """
    target = _target(path)
    errors = _columns("residuals", residuals)
    x = _times(times, errors.shape[0])
    names = _target_names(target_names, errors.shape[1])

    figure, axes = _new_figure(errors.shape[1], 2, width_ratios=[3, 1])
    for j, (over_time, histogram) in enumerate(axes):
        column = errors[:, j]
        over_time.plot(x, column, color="tab:blue", linewidth=0.9)
        over_time.axhline(0.0, color="black", linewidth=0.8)
        over_time.set_ylabel(names[j])
        over_time.grid(alpha=0.3)
        _format_time_axis(over_time, x)
        finite = column[np.isfinite(column)]
        if finite.size:
            histogram.hist(finite, bins="auto", color="tab:blue", alpha=0.8)
        histogram.axvline(0.0, color="black", linewidth=0.8)
        histogram.set_ylabel("count")
    axes[0, 0].set_title("residuals over time", fontsize="medium")
    axes[0, 1].set_title("distribution", fontsize="medium")
    if title:
        figure.suptitle(title)
    return _save(figure, target)


def plot_anomalies(
    path: PathLike,
    times: ArrayLike | None,
    values: ArrayLike,
    scores: ArrayLike,
    threshold: float,
    *,
    flagged: ArrayLike | None = None,
    truth: ArrayLike | None = None,
    title: str = "",
) -> Path:
    """The series with its flagged points, and below it the anomaly score and the threshold.

    Flagged points are red dots on the series; true anomalies, when given, are shaded spans
    (one per run of consecutive anomalous points, reaching half-way to the neighbours).

    Args:
        path: the PNG file to write (its folder is created if needed).
        times: `(N,)` datetime64 or numbers; None for 0..N-1.
        values: the series, `(N,)` or `(N, k)`; several columns are all drawn, thinly.
        scores: the anomaly scores, `(N,)`.
        threshold: the score above which a point is flagged.
        flagged: `(N,)` bools; None (default) for `scores > threshold`.
        truth: `(N,)` bools, True at the true anomalies; None (default) for none.
        title: the figure title; "" (default) for none.

    Returns:
        `path`, as a `pathlib.Path`.
    """
    target = _target(path)
    series = _columns("values", values)
    n = series.shape[0]
    score = np.asarray(scores, dtype=np.float64)
    if score.shape != (n,):
        raise ValueError(f"scores must be of shape ({n},), got {score.shape}")
    x = _times(times, n)
    marks = score > threshold if flagged is None else np.asarray(flagged, dtype=bool)
    if marks.shape != (n,):
        raise ValueError(f"flagged must be of shape ({n},), got {marks.shape}")
    anomalies = None if truth is None else np.asarray(truth, dtype=bool)
    if anomalies is not None and anomalies.shape != (n,):
        raise ValueError(f"truth must be of shape ({n},), got {anomalies.shape}")

    figure, axes = _new_figure(2, 1, sharex=True, height_ratios=[2, 1], height=6.0)
    top, bottom = axes[:, 0]
    width = 1.2 if series.shape[1] == 1 else 0.7
    top.plot(x, series, color="tab:blue", linewidth=width, alpha=1.0 if width > 1 else 0.7)
    rows, cols = np.nonzero(marks[:, None] & np.isfinite(series))
    top.scatter(x[rows], series[rows, cols], color="red", s=14, zorder=3, label="flagged")
    if anomalies is not None and anomalies.any():
        # span edges half-way between neighbouring times, in matplotlib's numbers for dates
        numbers = _x_numbers(x)
        step = np.diff(numbers)
        edges = np.concatenate(
            [
                [numbers[0] - (step[0] / 2 if step.size else 0.5)],
                numbers[:-1] + step / 2,
                [numbers[-1] + (step[-1] / 2 if step.size else 0.5)],
            ]
        )  # (N + 1,)
        for k, (first, last) in enumerate(_runs(anomalies)):
            label = "true anomaly" if k == 0 else None
            for axis in (top, bottom):
                axis.axvspan(edges[first], edges[last + 1], color="orange", alpha=0.25, label=label)
                label = None
    top.set_ylabel("value")
    top.grid(alpha=0.3)
    top.legend(loc="best", fontsize="small")

    bottom.plot(x, score, color="tab:gray", linewidth=0.9, label="score")
    bottom.axhline(threshold, color="red", linestyle="--", linewidth=1.0, label="threshold")
    bottom.set_ylabel("score")
    bottom.grid(alpha=0.3)
    bottom.legend(loc="best", fontsize="small")
    _format_time_axis(bottom, x)
    if title:
        figure.suptitle(title)
    return _save(figure, target)


def plot_training(
    path: PathLike, history: dict[str, Sequence[float]], *, title: str = "Training"
) -> Path:
    """Training curves per epoch, e.g. `{"train_loss": [...], "val_loss": [...]}`.

    The y-scale is logarithmic when every finite value is positive. Keys with empty lists are
    skipped; a curve may be shorter than the others (epochs count from 1 for each).

    Args:
        path: the PNG file to write (its folder is created if needed).
        history: a list of per-epoch values for each curve name.
        title: the figure title (default "Training"); "" for none.

    Returns:
        `path`, as a `pathlib.Path`.
    """
    target = _target(path)
    curves = {name: np.asarray(v, dtype=np.float64).reshape(-1) for name, v in history.items()}
    curves = {name: v for name, v in curves.items() if v.size}
    if not curves:
        raise ValueError("plot_training: the history has no values to plot")
    finite = np.concatenate([v[np.isfinite(v)] for v in curves.values()])

    figure, axes = _new_figure(1, 1, height=4.0)
    axis = axes[0, 0]
    for name, v in curves.items():
        marker = "o" if v.size <= 30 else None
        axis.plot(np.arange(1, v.size + 1), v, marker=marker, markersize=3, label=name)
    if finite.size and np.all(finite > 0):
        axis.set_yscale("log")
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs, not 2.5
    axis.set_xlabel("epoch")
    axis.grid(alpha=0.3, which="both")
    axis.legend(loc="best", fontsize="small")
    if title:
        axis.set_title(title)
    return _save(figure, target)


def plot_confusion(
    path: PathLike,
    matrix: ArrayLike,
    class_names: Sequence[str] | None,
    *,
    title: str = "",
) -> Path:
    """A confusion matrix as a heat map, the counts written in the cells.

    Args:
        path: the PNG file to write (its folder is created if needed).
        matrix: `(K, K)` counts, rows the true classes, columns the predicted ones (as
            `metrics.confusion_matrix` returns them); fractions are written with 2 decimals.
        class_names: one name per class; None for "0", "1", ...
        title: the figure title; "" (default) for none.

    Returns:
        `path`, as a `pathlib.Path`.
    """
    target = _target(path)
    counts = np.asarray(matrix, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise ValueError(f"matrix must be a square (K, K) array, got shape {counts.shape}")
    k = counts.shape[0]
    names = _names("class_names", class_names, k, [str(i) for i in range(k)])
    whole = bool(np.all(np.isfinite(counts)) and np.all(counts % 1 == 0))

    side = min(max(4.5, 0.55 * k + 2.5), 20.0)
    figure, axes = _new_figure(1, 1, height=side)
    figure.set_figwidth(side + 1.0)
    axis = axes[0, 0]
    image = axis.imshow(counts, cmap="Blues", vmin=0.0)
    figure.colorbar(image, ax=axis, shrink=0.8)
    high = np.nanmax(counts) if np.isfinite(counts).any() else 0.0
    fontsize = 9 if k <= 12 else max(4, int(110 / k))
    for (i, j), value in np.ndenumerate(counts):
        text = f"{int(value)}" if whole else f"{value:.2f}"
        color = "white" if high > 0 and value > high / 2 else "black"
        axis.text(j, i, text, ha="center", va="center", color=color, fontsize=fontsize)
    if max(map(len, names)) > 3:  # long names overlap unless turned
        axis.set_xticks(range(k), names, rotation=45, ha="right", rotation_mode="anchor")
    else:
        axis.set_xticks(range(k), names)
    axis.set_yticks(range(k), names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    if title:
        axis.set_title(title)
    return _save(figure, target)
