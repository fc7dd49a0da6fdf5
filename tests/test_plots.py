"""Task plots: each writes a valid PNG at its path, atomically, touching nothing else."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from liquidnets.tasks import plots  # imports matplotlib only when a plot is drawn

pytest.importorskip("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
N = 48
RNG = np.random.default_rng(0)
DATES = np.arange("2024-03-01T00", "2024-03-03T00", dtype="datetime64[h]")  # 48 hours
NUMBERS = np.arange(N) * 0.5
TIMES = pytest.mark.parametrize(
    "times", [DATES, NUMBERS, None], ids=["datetime64", "numbers", "none"]
)

TRUTH = np.zeros(N, bool)
TRUTH[[5, 6, 7, 30, N - 1]] = True
SCORES = np.abs(RNG.normal(size=N)) + 3.0 * TRUTH


def _forecast(path, times):
    actual = np.stack([np.sin(np.arange(N) / 5), np.cos(np.arange(N) / 7)], axis=1)
    predicted = actual + RNG.normal(scale=0.1, size=actual.shape)
    return plots.plot_forecast(
        path,
        times,
        actual,
        predicted,
        title="forecast",
        target_names=["a", "b"],
        lower=predicted - 0.2,
        upper=predicted + 0.2,
    )


def _forecast_flat(path, times):
    actual = np.sin(np.arange(N) / 5)
    predicted = np.where(np.arange(N) < 5, np.nan, actual + 0.1)  # a gap before the forecast
    return plots.plot_forecast(path, times, actual, predicted)


def _residuals(path, times):
    residuals = RNG.normal(size=(N, 3))
    residuals[0, 0] = np.nan
    return plots.plot_residuals(path, times, residuals, title="residuals")


def _anomalies(path, times):
    values = np.sin(np.arange(N) / 4)
    return plots.plot_anomalies(path, times, values, SCORES, 2.5, truth=TRUTH, title="anomalies")


def _anomalies_multi(path, times):
    values = RNG.normal(size=(N, 3))
    flagged = SCORES > 2.0
    return plots.plot_anomalies(path, times, values, SCORES, 2.0, flagged=flagged)


def _training(path, times):
    return plots.plot_training(path, {"train_loss": [1.0, 0.5, 0.25], "val_loss": [1.2, 0.7]})


def _training_linear(path, times):
    # a negative value (a log-likelihood, say): linear scale; the empty key is skipped
    history = {"train_nll": [0.5, -0.2, -0.4], "val_nll": [0.6, 0.1, np.nan], "lr": []}
    return plots.plot_training(path, history, title="")


def _confusion(path, times):
    matrix = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 9]])
    return plots.plot_confusion(path, matrix, ["walking", "sitting", "lying"], title="confusion")


def _confusion_fractions(path, times):
    matrix = np.array([[0.9, 0.1], [0.25, 0.75]])
    return plots.plot_confusion(path, matrix, None)


PLOTS = [
    _forecast,
    _forecast_flat,
    _residuals,
    _anomalies,
    _anomalies_multi,
    _training,
    _training_linear,
    _confusion,
    _confusion_fractions,
]


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert len(data) > len(PNG_SIGNATURE)
    assert data[:8] == PNG_SIGNATURE


@TIMES
@pytest.mark.parametrize("draw", PLOTS, ids=[f.__name__.strip("_") for f in PLOTS])
def test_writes_png_and_nothing_else(tmp_path, draw, times):
    neighbour = tmp_path / "results.csv"
    neighbour.write_text("model,mae\ncfc,0.1\n")
    other_png = tmp_path / "other.png"
    other_png.write_bytes(b"not mine")
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}

    target = tmp_path / "plot.png"
    result = draw(str(target), times)  # a str path too: the result is a Path

    assert isinstance(result, Path)
    assert result == target
    _assert_png(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.png", "plot.png", "results.csv"]
    assert {n: (tmp_path / n).stat().st_mtime_ns for n in before} == before
    assert neighbour.read_text() == "model,mae\ncfc,0.1\n"
    assert other_png.read_bytes() == b"not mine"


def test_replaces_its_own_file(tmp_path):
    target = tmp_path / "loss.png"
    target.write_bytes(b"an old plot")
    _training(target, None)
    _assert_png(target)
    assert [p.name for p in tmp_path.iterdir()] == ["loss.png"]


def test_creates_missing_folder(tmp_path):
    target = tmp_path / "runs" / "1" / "loss.png"
    assert _training(target, None) == target
    _assert_png(target)


def test_file_permissions_follow_the_umask(tmp_path):
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    mask = os.umask(0o022)
    try:
        target = _training(tmp_path / "loss.png", None)
    finally:
        os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o644


def test_no_figures_left_open_and_backend_untouched(tmp_path):
    import matplotlib

    backend = matplotlib.get_backend()
    plt = pytest.importorskip("matplotlib.pyplot")
    before = plt.get_fignums()
    for i in range(5):
        _training(tmp_path / f"t{i}.png", None)
        _confusion(tmp_path / f"c{i}.png", None)
    assert plt.get_fignums() == before
    assert matplotlib.get_backend() == backend


def test_failed_save_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "plot.png"
    target.mkdir()  # a folder in the way: os.replace fails
    with pytest.raises(OSError):
        _training(target, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png"]
    assert target.is_dir()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda p: plots.plot_training(p.with_suffix(".pdf"), {"loss": [1.0]}), "png"),
        (lambda p: plots.plot_training(p, {"loss": []}), "no values"),
        (lambda p: plots.plot_forecast(p, None, np.ones(4), np.ones(5)), "rows|same shape"),
        (lambda p: plots.plot_forecast(p, np.arange(3), np.ones(4), np.ones(4)), "times"),
        (lambda p: plots.plot_forecast(p, None, np.ones(4), np.ones(4), lower=np.ones(4)), "both"),
        (
            lambda p: plots.plot_forecast(
                p, None, np.ones((4, 2)), np.ones((4, 2)), target_names=["a"]
            ),
            "target_names",
        ),
        (lambda p: plots.plot_anomalies(p, None, np.ones(4), np.ones(3), 0.5), "scores"),
        (
            lambda p: plots.plot_anomalies(p, None, np.ones(4), np.ones(4), 0.5, truth=[True]),
            "truth",
        ),
        (lambda p: plots.plot_confusion(p, np.ones((2, 3)), None), "square"),
        (lambda p: plots.plot_confusion(p, np.ones((2, 2)), ["a"]), "class_names"),
    ],
)
def test_errors_write_nothing(tmp_path, call, match):
    with pytest.raises(ValueError, match=match):
        call(tmp_path / "plot.png")
    assert list(tmp_path.iterdir()) == []
