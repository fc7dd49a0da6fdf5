"""Task metrics: hand-computed values on tiny arrays, undefined cases, input errors, the table."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pytest

from liquidnets.tasks.metrics import (
    calibrate_threshold,
    classification_metrics,
    confusion_matrix,
    detection_metrics,
    forecast_metrics,
    format_table,
)

# ------------------------------------------------------------------------------------ forecasting


def test_forecast_mae_rmse_by_hand():
    m = forecast_metrics(np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 5.0]))
    assert m["mae"] == pytest.approx(1.0)  # (1 + 0 + 2) / 3
    assert m["rmse"] == pytest.approx(math.sqrt(5.0 / 3.0))  # (1 + 0 + 4) / 3
    assert set(m) == {"mae", "rmse", "smape", "mase", "r2"}
    assert all(type(v) is float for v in m.values())


def test_forecast_smape_by_hand_zero_terms_count_zero():
    # terms: 0, 2*2/(2+4) = 2/3, and 0 for y = p = 0 (still counted in the mean)
    m = forecast_metrics(np.array([1.0, 2.0, 0.0]), np.array([1.0, 4.0, 0.0]))
    assert m["smape"] == pytest.approx(100.0 * (2.0 / 3.0) / 3.0)
    # a sign flip is the largest error sMAPE knows: 200%
    assert forecast_metrics([1.0], [-1.0])["smape"] == pytest.approx(200.0)


def test_forecast_mase_season_1_and_2():
    y_train = np.array([1.0, 2.0, 4.0, 7.0])
    y_true, y_pred = np.array([8.0, 9.0]), np.array([9.0, 9.0])  # MAE 0.5
    # season 1: |2-1|, |4-2|, |7-4| -> mean 2
    assert forecast_metrics(y_true, y_pred, y_train=y_train)["mase"] == pytest.approx(0.25)
    # season 2: |4-1|, |7-2| -> mean 4
    m = forecast_metrics(y_true, y_pred, y_train=y_train, season=2)
    assert m["mase"] == pytest.approx(0.125)


def test_forecast_mase_list_of_series_ignores_the_seam():
    y_true, y_pred = np.array([8.0, 9.0]), np.array([9.0, 9.0])  # MAE 0.5
    series = [np.array([1.0, 2.0, 4.0]), np.array([10.0, 10.0, 13.0])]
    # within-series differences 1, 2, 0, 3 -> 1.5; the 4 -> 10 jump is not a difference
    m = forecast_metrics(y_true, y_pred, y_train=series)
    assert m["mase"] == pytest.approx(0.5 / 1.5)
    # a series too short for the season adds nothing
    m = forecast_metrics(y_true, y_pred, y_train=[*series, np.array([5.0])])
    assert m["mase"] == pytest.approx(0.5 / 1.5)


def test_forecast_mase_per_column_then_averaged():
    y_train = np.array([[0.0, 0.0], [1.0, 4.0], [2.0, 8.0]])  # scales 1 and 4
    y_true = np.array([[3.0, 12.0], [4.0, 16.0]])
    y_pred = np.array([[4.0, 12.0], [4.0, 18.0]])  # column MAEs 0.5 and 1.0
    m = forecast_metrics(y_true, y_pred, y_train=y_train)
    assert m["mase"] == pytest.approx((0.5 / 1.0 + 1.0 / 4.0) / 2)
    # the same columns as a list of one (n, 2) series
    assert forecast_metrics(y_true, y_pred, y_train=[y_train])["mase"] == pytest.approx(m["mase"])


def test_forecast_mase_undefined_is_nan():
    y_true, y_pred = np.array([1.0, 2.0]), np.array([1.0, 3.0])
    assert math.isnan(forecast_metrics(y_true, y_pred)["mase"])  # no y_train
    assert math.isnan(forecast_metrics(y_true, y_pred, y_train=np.ones(5))["mase"])  # scale 0
    short = forecast_metrics(y_true, y_pred, y_train=np.array([1.0, 2.0]), season=2)
    assert math.isnan(short["mase"])  # no pair two steps apart


def test_forecast_r2_perfect_mean_and_constant():
    y = np.array([1.0, 2.0, 3.0])
    assert forecast_metrics(y, y)["r2"] == pytest.approx(1.0)
    assert forecast_metrics(y, np.full(3, 2.0))["r2"] == pytest.approx(0.0)
    assert forecast_metrics(y, np.array([3.0, 2.0, 1.0]))["r2"] == pytest.approx(1.0 - 8.0 / 2.0)
    assert math.isnan(forecast_metrics(np.ones(3), y)["r2"])  # constant target


def test_forecast_r2_per_column_then_averaged():
    y_true = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    y_pred = np.array([[1.0, 20.0], [2.0, 20.0], [3.0, 20.0]])  # R² 1 and 0
    assert forecast_metrics(y_true, y_pred)["r2"] == pytest.approx(0.5)
    # a constant column has no R²: the mean is over the other columns
    y_true[:, 1] = 5.0
    assert forecast_metrics(y_true, y_pred)["r2"] == pytest.approx(1.0)


def test_forecast_flat_equals_one_column():
    rng = np.random.default_rng(0)
    y, p, train = rng.normal(size=7), rng.normal(size=7), rng.normal(size=20)
    flat = forecast_metrics(y, p, y_train=train, season=3)
    column = forecast_metrics(y[:, None], p[:, None], y_train=train[:, None], season=3)
    assert flat == pytest.approx(column)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "kwargs", "match"),
    [
        (np.ones(3), np.ones(4), {}, "same shape"),
        (np.ones((3, 1)), np.ones(3), {}, "same shape"),
        (np.ones(0), np.ones(0), {}, "empty"),
        (np.ones((2, 2, 2)), np.ones((2, 2, 2)), {}, "shape"),
        (np.ones(3), np.ones(3), {"season": 0}, "season"),
        (np.ones((3, 2)), np.ones((3, 2)), {"y_train": np.ones(5)}, "column"),
    ],
)
def test_forecast_errors(y_true, y_pred, kwargs, match):
    with pytest.raises(ValueError, match=match):
        forecast_metrics(y_true, y_pred, **kwargs)


# --------------------------------------------------------------------------------- classification


def _pairwise_auc(scores, positive):
    """The AUC by its definition: over all (positive, negative) pairs, wins + ties / 2."""
    pos, neg = scores[positive], scores[~positive]
    wins = sum((p > q) + 0.5 * (p == q) for p, q in product(pos, neg))
    return wins / (len(pos) * len(neg))


def _binary(scores):
    scores = np.asarray(scores, dtype=float)
    return np.stack([1.0 - scores, scores], axis=1)


def test_auroc_perfect_constant_and_reversed():
    y = np.array([0, 0, 1, 1])
    assert classification_metrics(y, _binary([0.1, 0.2, 0.8, 0.9]))["auroc"] == 1.0
    assert classification_metrics(y, _binary([0.5, 0.5, 0.5, 0.5]))["auroc"] == 0.5
    assert classification_metrics(y, _binary([0.9, 0.8, 0.2, 0.1]))["auroc"] == 0.0


def test_auroc_with_ties_by_hand():
    # positives 0.4 and 0.8 against negatives 0.1 and 0.4: 1 + 0.5 + 1 + 1 = 3.5 of 4 pairs
    y = np.array([0, 0, 1, 1])
    m = classification_metrics(y, _binary([0.1, 0.4, 0.4, 0.8]))
    assert m["auroc"] == pytest.approx(0.875)


def test_auroc_matches_pairwise_definition_on_random_ties():
    rng = np.random.default_rng(1)
    for _ in range(20):
        y = rng.integers(0, 2, 30)
        y[:2] = [0, 1]
        scores = rng.integers(0, 5, 30) / 4.0  # many ties
        got = classification_metrics(y, _binary(scores))["auroc"]
        assert got == pytest.approx(_pairwise_auc(scores, y == 1))


def test_auroc_one_class_is_nan():
    m = classification_metrics(np.array([1, 1, 1]), _binary([0.2, 0.6, 0.9]))
    assert math.isnan(m["auroc"])
    assert m["accuracy"] == pytest.approx(2.0 / 3.0)


# rows are (true class, probabilities); worked out by hand below
Y3 = np.array([0, 0, 1, 1, 2, 2])
P3 = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.3, 0.4, 0.3],
        [0.2, 0.6, 0.2],
        [0.5, 0.3, 0.2],
        [0.1, 0.2, 0.7],
        [0.3, 0.3, 0.4],
    ]
)


def test_three_class_by_hand():
    m = classification_metrics(Y3, P3)
    # argmax 0, 1, 1, 0, 2, 2: rows 0, 2, 4, 5 right
    assert m["accuracy"] == pytest.approx(4.0 / 6.0)
    # F1 = 2TP / (2TP + FP + FN): class 0: 2/4, class 1: 2/4, class 2: 4/4
    assert m["macro_f1"] == pytest.approx((0.5 + 0.5 + 1.0) / 3.0)
    # one-vs-rest: class 0: (4 + 2.5) / 8, class 1: (4 + 2.5) / 8 (a tie at 0.3 each),
    # class 2: 8 / 8
    assert m["auroc"] == pytest.approx((0.8125 + 0.8125 + 1.0) / 3.0)


def test_multiclass_auroc_skips_classes_without_positives():
    # class 2 never occurs in y_true: the mean is over classes 0 and 1
    y = np.array([0, 0, 1, 1])
    p = np.array([[0.6, 0.3, 0.1], [0.5, 0.2, 0.3], [0.2, 0.7, 0.1], [0.1, 0.4, 0.5]])
    aucs = [_pairwise_auc(p[:, c], y == c) for c in (0, 1)]
    assert classification_metrics(y, p)["auroc"] == pytest.approx(np.mean(aucs))


def test_macro_f1_counts_classes_only_predicted():
    # predictions 0, 2, 1 (argmax); class 3 is nowhere and is left out
    y = np.array([0, 0, 1])
    p = np.eye(4)[[0, 2, 1]]
    # class 0: 2/3, class 1: 1, class 2 (only predicted): 0
    assert classification_metrics(y, p)["macro_f1"] == pytest.approx(5.0 / 9.0)


def test_classification_accepts_whole_float_labels():
    m = classification_metrics(np.array([0.0, 1.0]), _binary([0.2, 0.7]))
    assert m == {"accuracy": 1.0, "macro_f1": 1.0, "auroc": 1.0}


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        (np.array([0, 1]), np.ones((3, 2)) / 2, "rows"),
        (np.array([0, 2]), np.ones((2, 2)) / 2, "outside"),
        (np.array([0.5, 1.0]), np.ones((2, 2)) / 2, "integer"),
        (np.array([0, 1]), np.ones(2), "shape"),
        (np.zeros(0, dtype=int), np.ones((0, 2)), "empty"),
    ],
)
def test_classification_errors(y, p, match):
    with pytest.raises(ValueError, match=match):
        classification_metrics(y, p)


def test_confusion_matrix_by_hand():
    m = confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), 4)
    expected = np.array([[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(m, expected)
    assert m.dtype == np.int64
    assert confusion_matrix(np.zeros(0, int), np.zeros(0, int), 2).sum() == 0


def test_confusion_matrix_errors():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(np.array([0, 1]), np.array([0]), 3)
    with pytest.raises(ValueError, match="n_classes"):
        confusion_matrix(np.array([0]), np.array([0]), 0)


# -------------------------------------------------------------------------------------- anomalies


def test_detection_metrics_by_hand():
    truth = np.array([True, True, True, False, False])
    flagged = np.array([True, False, False, True, False])
    m = detection_metrics(truth, flagged)
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(1.0 / 3.0)
    assert m["f1"] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))


def test_detection_metrics_undefined_cases_are_zero():
    truth = np.array([True, False, False])
    nothing = np.zeros(3, bool)
    assert detection_metrics(truth, nothing) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    # no true anomaly: recall undefined, precision 0 (every flag is wrong)
    m = detection_metrics(nothing, np.array([True, False, False]))
    assert m == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert detection_metrics(nothing, nothing) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert detection_metrics(truth, truth) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_detection_metrics_errors():
    with pytest.raises(ValueError, match="same shape"):
        detection_metrics(np.zeros(3, bool), np.zeros(4, bool))
    with pytest.raises(ValueError, match="bools"):
        detection_metrics(np.zeros(3, bool), np.array([0.2, 0.7, 0.9]))  # scores, not flags


def test_calibrate_threshold_with_labels():
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.8])
    labels = np.array([False, False, False, True, True])
    threshold = calibrate_threshold(scores, labels=labels)
    assert threshold == pytest.approx(0.3)  # flags exactly 0.8 and 0.9: F1 = 1
    assert detection_metrics(labels, scores > threshold)["f1"] == 1.0


def test_calibrate_threshold_ties_take_the_highest():
    # thresholds 1 and 4 both give F1 2/3 (TP 2 of 4 flagged; TP 1 of 1 flagged); 4 wins
    scores = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    labels = np.array([False, True, False, False, True])
    assert calibrate_threshold(scores, labels=labels) == 4.0


def test_calibrate_threshold_matches_brute_force():
    rng = np.random.default_rng(2)
    for _ in range(20):
        scores = rng.integers(0, 8, 25).astype(float)
        labels = rng.random(25) < 0.3
        labels[0] = True
        best = max(
            np.unique(scores),
            key=lambda t: (detection_metrics(labels, scores > t)["f1"], t),
        )
        assert calibrate_threshold(scores, labels=labels) == best


def test_calibrate_threshold_quantile_without_positive_labels():
    scores = np.arange(101) / 100.0
    assert calibrate_threshold(scores, quantile=0.9) == pytest.approx(0.9)
    assert calibrate_threshold(scores) == pytest.approx(0.99)
    no_positives = np.zeros(101, bool)
    assert calibrate_threshold(scores, quantile=0.9, labels=no_positives) == pytest.approx(0.9)
    assert type(calibrate_threshold(scores)) is float


@pytest.mark.parametrize(
    ("scores", "kwargs", "match"),
    [
        (np.zeros(0), {}, "non-empty"),
        (np.array([0.1, np.nan]), {}, "finite"),
        (np.array([0.1, 0.2]), {"quantile": 1.5}, "quantile"),
        (np.array([0.1, 0.2]), {"labels": np.array([True])}, "shape"),
    ],
)
def test_calibrate_threshold_errors(scores, kwargs, match):
    with pytest.raises(ValueError, match=match):
        calibrate_threshold(scores, **kwargs)


# ------------------------------------------------------------------------------------------ table


def test_format_table_marks_best_and_writes_na():
    rows = [
        {"model": "cfc", "mae": 0.1234, "rmse": 0.2, "r2": 0.5, "params": 1200},
        {"model": "naive", "mae": 0.3, "rmse": float("nan"), "r2": 0.75, "params": 0},
        {"model": "lstm", "mae": 0.5},
    ]
    table = format_table(rows, ["mae", "rmse", "r2", "params"])
    assert table.splitlines() == [
        "| model | mae | rmse | r2 | params |",
        "|---|--:|--:|--:|--:|",
        "| cfc | 0.1234* | 0.2000* | 0.5000 | 1200 |",
        "| naive | 0.3000 | n/a | 0.7500* | 0 |",
        "| lstm | 0.5000 | n/a | n/a | n/a |",
    ]


def test_format_table_title_model_column_and_ties():
    rows = [{"model": "a", "auroc": 0.9}, {"model": "b", "auroc": 0.9}]
    table = format_table(rows, ["model", "auroc"], title="Classification")
    assert table.splitlines() == [
        "Classification",
        "",
        "| model | auroc |",
        "|---|--:|",
        "| a | 0.9000* |",
        "| b | 0.9000* |",
    ]


def test_format_table_four_significant_digits():
    rows = [{"model": "m", "mase": 1234.56, "smape": 12.3456, "rmse": 0.000123456}]
    table = format_table(rows, ["mase", "smape", "rmse"])
    assert table.splitlines()[-1] == "| m | 1235* | 12.35* | 0.0001235* |"


def test_format_table_all_nan_column_is_unmarked():
    rows = [{"model": "a", "mase": float("nan")}, {"model": "b", "mase": float("nan")}]
    assert "*" not in format_table(rows, ["mase"])
