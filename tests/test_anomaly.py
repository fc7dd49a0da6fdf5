"""Anomaly detection that can be evaluated: `--train-until`, event metrics and top-1, on
hand-made arrays and on injected anomalies."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from liquidnets.tasks.metrics import event_metrics, events, top1_score

pd = pytest.importorskip("pandas")

from liquidnets.data import DataError, load_series, rows_until, split_by_time  # noqa: E402

FAST = {"max_epochs": 12, "progress_bar": False, "lr": 1e-2}


def _flags(n: int, *spans) -> np.ndarray:
    out = np.zeros(n, bool)
    for start, stop in spans:
        out[start:stop] = True
    return out


# ------------------------------------------------------------------------------- event metrics


def test_events_are_the_runs_of_true():
    assert events([]) == []
    assert events([0, 0]) == []
    assert events([1, 1, 1]) == [(0, 3)]
    assert events([1, 0, 1, 1, 0, 0, 1]) == [(0, 1), (2, 4), (6, 7)]


def test_event_metrics_by_hand_at_each_tolerance():
    truth = _flags(60, (2, 5), (20, 21), (40, 50))  # three labelled events
    # a flag 2 after event 1's last reading, a false alarm run, a flag 3 after event 3
    flagged = _flags(60, (6, 7), (30, 32), (52, 53))
    m = event_metrics(truth, flagged, tolerance=2)
    assert (m["events"], m["flagged_events"]) == (3, 3)
    assert m["event_recall"] == pytest.approx(1 / 3)  # only event 1
    assert m["event_precision"] == pytest.approx(1 / 3)  # only the flag at 6
    assert m["event_f1"] == pytest.approx(1 / 3)
    m = event_metrics(truth, flagged, tolerance=3)  # now 52 reaches event 3 (49 + 3)
    assert m["event_recall"] == pytest.approx(2 / 3)
    assert m["event_precision"] == pytest.approx(2 / 3)
    assert m["event_f1"] == pytest.approx(2 / 3)
    m = event_metrics(truth, flagged, tolerance=0)  # no flag inside any event
    assert (m["event_recall"], m["event_precision"], m["event_f1"]) == (0.0, 0.0, 0.0)
    m = event_metrics(truth, flagged, tolerance=10)  # 30 is 10 after event 2 (at 20)
    assert (m["event_recall"], m["event_precision"], m["event_f1"]) == (1.0, 1.0, 1.0)


def test_a_flag_before_an_event_counts_within_the_tolerance():
    truth, flagged = _flags(20, (10, 12)), _flags(20, (7, 8))
    assert event_metrics(truth, flagged, tolerance=3)["event_recall"] == 1.0  # 10 - 7 = 3
    assert event_metrics(truth, flagged, tolerance=2)["event_recall"] == 0.0


def test_one_flagged_run_over_two_events_is_one_true_positive():
    truth = _flags(30, (5, 7), (10, 12))
    flagged = _flags(30, (4, 13), (25, 26))
    m = event_metrics(truth, flagged, tolerance=0)
    assert m["event_recall"] == 1.0  # both events hold a flag
    assert m["event_precision"] == 0.5  # the long run hits, the flag at 25 does not
    assert m["event_f1"] == pytest.approx(2 * 0.5 * 1.0 / 1.5)


def test_event_metrics_never_reach_across_series():
    truth = _flags(20, (9, 10))  # the last reading of series 0
    flagged = _flags(20, (10, 11))  # the first reading of series 1
    series = np.repeat([0, 1], 10)
    assert event_metrics(truth, flagged, tolerance=5)["event_recall"] == 1.0
    m = event_metrics(truth, flagged, tolerance=5, series=series)
    assert (m["event_recall"], m["event_precision"]) == (0.0, 0.0)
    # an event that runs to the end of series 0 and one from the start of series 1: two
    truth = _flags(20, (8, 12))
    assert event_metrics(truth, truth, series=series)["events"] == 2
    assert event_metrics(truth, truth)["events"] == 1


def test_event_metrics_undefined_cases_are_zero():
    none = np.zeros(8, bool)
    some = _flags(8, (2, 3))
    m = event_metrics(none, some)
    assert (m["event_recall"], m["event_precision"], m["event_f1"]) == (0.0, 0.0, 0.0)
    m = event_metrics(some, none)
    assert (m["event_recall"], m["event_precision"], m["events"]) == (0.0, 0.0, 1)
    assert event_metrics(some, some)["event_f1"] == 1.0
    assert all(type(event_metrics(some, some)[k]) is float for k in ("event_recall", "event_f1"))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tolerance": -1}, "tolerance must be an integer >= 0"),
        ({"tolerance": 1.5}, "tolerance must be an integer >= 0"),
        ({"series": np.zeros(3)}, r"series must have shape \(4,\)"),
    ],
)
def test_event_metrics_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        event_metrics(np.zeros(4, bool), np.zeros(4, bool), **kwargs)
    with pytest.raises(ValueError, match="same shape"):
        event_metrics(np.zeros(4, bool), np.zeros(5, bool))


# ------------------------------------------------------------------------------------- top-1


@pytest.mark.parametrize(
    ("at", "expected"),
    [(505, 1.0), (609, 1.0), (610, 0.0), (400, 1.0), (399, 0.0), (0, 0.0)],
)
def test_top1_is_within_100_of_the_labelled_range(at, expected):
    truth = _flags(1000, (500, 510))
    scores = np.zeros(1000)
    scores[at] = 5.0
    assert top1_score(truth, scores) == expected


def test_top1_margin_ties_series_and_no_labels():
    truth = _flags(1000, (500, 510))
    scores = np.zeros(1000)
    scores[[300, 505]] = 5.0  # a tie: the first of the highest counts
    assert top1_score(truth, scores) == 0.0
    scores[300] = 0.0
    assert top1_score(truth, scores, margin=0) == 1.0
    assert math.isnan(top1_score(np.zeros(1000, bool), scores))
    # two series, the first hit and the second missed: the archive's mean, 0.5
    truth2 = np.concatenate([truth, _flags(1000, (100, 110))])
    scores2 = np.concatenate([scores, np.eye(1000)[900]])
    assert top1_score(truth2, scores2, series=np.repeat([0, 1], 1000)) == 0.5
    with pytest.raises(ValueError, match="margin must be an integer >= 0"):
        top1_score(truth, scores, margin=-1)


# ------------------------------------------------------------------------------- train-until


def numbered(n=200):
    return pd.DataFrame({"t": np.arange(n, dtype=float), "x": np.sin(np.arange(n) / 5)})


def hourly(n=48):
    times = pd.date_range("2024-01-01", periods=n, freq="h")
    return pd.DataFrame({"time": times.astype(str), "x": np.arange(n, dtype=float)})


def test_train_until_a_number_a_timestamp_or_a_row_count():
    s = load_series(numbered(), targets="x", time="t")
    assert rows_until(s, 99.5) == [100] and rows_until(s, "99") == [100]  # at or before it
    assert rows_until(s, "rows:100") == [100] and rows_until(s, " ROWS: 7 ") == [7]
    parts = split_by_time(s, val=0.15, until="rows:100")  # validation from the end of the 100
    assert parts == {
        "train": [slice(0, 85)],
        "val": [slice(85, 100)],
        "test": [slice(100, 200)],
    }
    h = load_series(hourly(), targets="x", time="time")
    assert rows_until(h, "2024-01-01 05:00") == [6]
    assert rows_until(h, "2024-01-01 05:30") == [6]
    assert rows_until(h, "2024-01-01 06:00+01:00") == [6]  # 05:00 UTC
    assert rows_until(h, pd.Timestamp("2024-01-02")) == [25]
    assert rows_until(h, np.datetime64("2024-01-01T10:00")) == [11]


def test_train_until_applies_to_every_series():
    frame = pd.concat(
        [numbered(50).assign(id="a"), numbered(80).assign(id="b", t=lambda f: f["t"] + 10)]
    )
    s = load_series(frame, targets="x", time="t", id="id")
    assert rows_until(s, 29) == [30, 20]  # b starts at t = 10
    assert rows_until(s, "rows:40") == [40, 40]
    assert rows_until(s, "rows:60") == [50, 60]  # a: every row trains, b scores 20
    assert rows_until(s, 55) == [50, 46]


@pytest.mark.parametrize(
    ("frame", "time", "until", "message"),
    [
        (numbered(), "t", "rows:0", "rows:N needs a whole number of rows N >= 1; got '0'"),
        (numbered(), "t", "rows:ten", "rows:N needs a whole number of rows N >= 1; got 'ten'"),
        (
            numbered(),
            "t",
            "rows:200",
            "no rows after it to score (the longest series has 200 rows)",
        ),
        (numbered(), "t", 250, "no rows after it to score (the data ends at 199)"),
        (numbered(), "t", -1, "no rows at or before it to train on (the data starts at 0)"),
        (numbered(), "t", "soon", "time column 't' holds numbers; got 'soon'"),
        (numbered(), None, 100, "no time column (--time), so give the number of training rows as"),
        (numbered(), "t", "rows:1", "1 row at or before it: too few for training and validation"),
        (hourly(), "time", "2023-12-31", "no rows at or before it to train on (the data starts"),
        (hourly(), "time", "2024-03-01", "no rows after it to score (the data ends at 2024-01-02"),
        (hourly(), "time", "noon", "holds timestamps; cannot read 'noon' as one"),
        (
            hourly(),
            "time",
            "1200",
            "cannot read '1200' as one (for the first 1200 rows: rows:1200)",
        ),
    ],
)
def test_bad_train_until_is_one_line(frame, time, until, message):
    s = load_series(frame, targets="x", time=time)
    with pytest.raises(DataError, match=r"^<frame>: --train-until .*") as err:
        split_by_time(s, until=until)
    assert message in str(err.value) and "\n" not in str(err.value)


# --------------------------------------------------------------------- on injected anomalies


def injected(n=1500, until=600, seed=0):
    """A noisy sine (period 50) with 3 spikes, 2 level shifts and 2 stuck stretches injected
    after row `until`, labelled; the injected events as (kind, start, stop)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = np.sin(2 * np.pi * t / 50) + 0.05 * rng.normal(size=n)
    label = np.zeros(n, int)
    plan = [("spike", 2), ("level_shift", 30), ("stuck", 25), ("spike", 1), ("level_shift", 30),
            ("spike", 2), ("stuck", 25)]  # fmt: skip
    slot = (n - until) // len(plan)
    spans = []
    for k, (kind, length) in enumerate(plan):
        start = until + k * slot + slot // 3
        if kind == "spike":
            x[start : start + length] += 1.2 * (-1) ** k
        elif kind == "level_shift":
            x[start : start + length] += 0.8
        else:
            x[start : start + length] = x[start - 1]
        label[start : start + length] = 1
        spans.append((kind, start, start + length))
    return pd.DataFrame({"t": t, "flow": x, "anomaly": label}), spans


def test_train_until_finds_the_injected_anomalies(tmp_path):
    pytest.importorskip("lightning")
    from liquidnets.tasks import AnomalyDetector

    frame, spans = injected()
    det = AnomalyDetector("cfc", lookback=24, units=16, train=FAST)
    det.fit(frame, targets="flow", time="t", label="anomaly", train_until="rows:600")
    result = det.backtest(frame)
    assert result["times"][0] == 600 and len(result["scores"]) == 900  # all after it
    m = result["metrics"]
    assert m["events"] == len(spans) and m["event_recall"] == 1.0, m  # every kind found
    assert m["event_precision"] > 0.3 and m["f1"] > 0.3 and m["top1"] == 1.0, m
    truth = result["truth"]
    assert result["scores"][truth].mean() > 2 * result["scores"][~truth].mean()
    # the same cut as a time of the time column, and the saved detector keeps it
    again = AnomalyDetector("naive", lookback=24).fit(
        frame, targets="flow", time="t", label="anomaly", train_until=599
    )
    assert again.backtest(frame)["times"][0] == 600
    det.save(tmp_path / "det")
    loaded = AnomalyDetector.load(tmp_path / "det")
    assert loaded.forecaster.spec["train_until"] == "rows:600"
    assert loaded.backtest(frame)["metrics"] == pytest.approx(m)


def test_without_train_until_the_last_15_percent_is_scored():
    pytest.importorskip("lightning")
    from liquidnets.tasks import AnomalyDetector

    frame, _ = injected()
    det = AnomalyDetector("naive", lookback=24).fit(frame, targets="flow", time="t")
    result = det.backtest(frame)
    assert result["times"][0] == 1275 and len(result["scores"]) == 225


def _cli(args):
    from click.testing import CliRunner

    from liquidnets.cli import build_cli

    return CliRunner().invoke(build_cli(), args)


def test_the_command_trains_until_and_reports_event_metrics(tmp_path):
    pytest.importorskip("lightning")
    frame, _ = injected(n=900, until=400)
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    run = tmp_path / "run"
    common = ["--data", str(data), "--time", "t", "--lookback", "16", "--units", "8"]
    result = _cli(
        ["train", "--task", "anomaly", "--target", "flow", "--label", "anomaly", *common,
         "--train-until", "rows:400", "--tolerance", "5", "--max-epochs", "2", "--out", str(run)]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if line.startswith("| model"))
    for column in ("f1", "event_recall", "event_precision", "event_f1", "top1"):
        assert f"| {column} |" in header
    rows = json.loads((run / "metrics.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["cfc", "naive", "lstm", "gru"]
    naive = rows[1]
    assert naive["events"] == 7 and 0 <= naive["event_recall"] <= 1
    config = json.loads((run / "config.json").read_text())
    assert (config["train_until"], config["tolerance"]) == ("rows:400", 5)
    # a run folder of before these options (no train_until, no tolerance) still evaluates,
    # with the split by fractions it was made with
    del config["train_until"], config["tolerance"]
    (run / "config.json").write_text(json.dumps(config))
    for name in config["models"]:
        meta = run / "models" / name / "metadata.json"
        data_meta = json.loads(meta.read_text())
        del data_meta["spec"]["train_until"]
        meta.write_text(json.dumps(data_meta))
    result = _cli(["evaluate", str(run), "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rows"][1]["events"] <= 2  # the last 15% only


def test_forecasting_trains_until_too_and_classify_refuses(tmp_path):
    pytest.importorskip("lightning")
    from liquidnets.tasks import Forecaster

    frame, _ = injected(n=400, until=200)
    model = Forecaster("naive", lookback=8, horizon=2).fit(
        frame, targets="flow", time="t", train_until="rows:300"
    )
    bt = model.backtest(frame)
    assert bt["times"][0] == 300 and len(bt["times"]) == 99  # every window after the cut
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    result = _cli(
        ["train", "--task", "classify", "--label", "anomaly", "--data", str(data),
         "--train-until", "rows:300", "--out", str(tmp_path / "r")]
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.output == (
        "Error: --train-until splits the rows of forecast and anomaly runs; classify splits "
        "with --val and --test, or --split-column\n"
    )


@pytest.mark.parametrize(
    ("until", "message"),
    [
        ("rows:900", "data.csv: --train-until rows:900: no rows after it to score"),
        ("2024-01-01", "data.csv: --train-until 2024-01-01: time column 't' holds numbers"),
        ("rows:-3", "data.csv: --train-until rows:-3: rows:N needs a whole number of rows"),
        ("-10", "data.csv: --train-until -10: no rows at or before it to train on"),
    ],
)
def test_bad_train_until_on_the_command_line_is_one_line(tmp_path, until, message):
    pytest.importorskip("lightning")
    frame, _ = injected(n=900, until=400)
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    result = _cli(
        ["train", "--task", "anomaly", "--target", "flow", "--data", str(data), "--time", "t",
         f"--train-until={until}", "--out", str(tmp_path / "r")]
    )  # fmt: skip
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: " + message), result.output
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------ the benchmark


def test_the_benchmark_injects_labelled_anomalies_after_the_cut():
    import benchmark_scripts

    bench = benchmark_scripts.load("quality_anomaly")
    rng = np.random.default_rng(1)
    values = rng.normal(size=(1000, 2))
    out, label, injected_events = bench.inject(values, 400, per_kind=2, stretch=(10, 20))
    assert sorted(e["kind"] for e in injected_events) == sorted(2 * list(bench.KINDS))
    assert label[:400].sum() == 0 and np.array_equal(out[:400], values[:400])
    spans = sorted((e["start"], e["stop"]) for e in injected_events)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))  # none touch
    assert label.sum() == sum(stop - start for start, stop in spans)
    for e in injected_events:
        rows, c = slice(e["start"], e["stop"]), e["channel"]
        got, was = out[rows, c], values[rows, c]
        if e["kind"] == "stuck":
            assert np.all(got == out[e["start"] - 1, c])
        else:
            assert np.all(np.abs(got - was) > 2.5)  # 3-6 robust SDs of N(0, 1)


def test_the_benchmark_runs_reduced():
    pytest.importorskip("lightning")
    import benchmark_scripts

    bench = benchmark_scripts.load("quality_anomaly")
    result = bench.run(quick=True, threads=1, names=["co2"])
    (co2,) = result["datasets"]
    assert [r["model"] for r in co2["models"]] == ["cfc", "naive", "lstm", "gru"]
    assert co2["train_until"] == "rows:254" and len(co2["injected"]) == 6
    for row in co2["models"]:
        assert {"f1", "event_recall", "event_precision", "event_f1", "train_seconds"} <= set(row)
        assert set(row["found"]) == set(bench.KINDS)
    lines = bench.table(result).splitlines()
    assert lines[0].startswith("| data | model | precision |") and len(lines) == 2 + 4
