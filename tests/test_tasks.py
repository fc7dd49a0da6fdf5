"""Classification and anomaly detection, from Python and from the command line."""

import json

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("lightning")

from liquidnets.data import DataError  # noqa: E402
from liquidnets.tasks import AnomalyDetector, Classifier  # noqa: E402

FAST = {"max_epochs": 12, "progress_bar": False, "lr": 1e-2}


def machine_states(n=1200, seed=0, series=1):
    """A vibration sensor whose pattern depends on the machine's state (idle, busy, fault)."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(series):
        t = np.arange(n)
        phase = (t // 60 + k) % 3
        state = np.array(["idle", "busy", "fault"])[phase]
        signal = np.where(phase == 1, np.sin(t), np.where(phase == 2, np.sin(t / 3) + 0.5, 0.0))
        signal = signal + 0.1 * np.sin(t / 5) + 0.2 * rng.normal(size=n)
        frames.append(
            pd.DataFrame({"machine": f"m{k}", "t": t, "vibration": signal, "state": state})
        )
    return pd.concat(frames, ignore_index=True)


def spiky(n=2000, seed=1, spikes=30):
    """A smooth flow with short spikes, labelled."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = np.sin(t / 12) + 0.05 * rng.normal(size=n)
    label = np.zeros(n, int)
    for start in rng.choice(np.arange(100, n - 5), spikes, replace=False):
        x[start : start + 2] += rng.choice([-1.5, 1.5])
        label[start : start + 2] = 1
    return pd.DataFrame({"t": t, "flow": x, "anomaly": label})


def test_classifier_learns_what_the_naive_prior_cannot(tmp_path):
    frame = machine_states()
    naive = Classifier("naive", lookback=16).fit(frame, label="state", time="t")
    clf = Classifier("cfc", lookback=16, units=16, train=FAST).fit(frame, label="state", time="t")
    assert clf.classes == ["busy", "fault", "idle"]
    ours, base = clf.backtest(frame)["metrics"], naive.backtest(frame)["metrics"]
    assert ours["accuracy"] > 0.8 > base["accuracy"] + 0.3
    assert ours["auroc"] > 0.9 and base["auroc"] == pytest.approx(0.5)
    proba = clf.predict_proba(frame)
    assert np.allclose(proba[clf.classes].sum(axis=1), 1.0, atol=1e-5)
    assert len(proba) == len(frame) - 16 + 1  # one per window
    clf.save(tmp_path / "clf")
    again = Classifier.load(tmp_path / "clf").predict_proba(frame)
    assert np.allclose(again[clf.classes], proba[clf.classes], atol=1e-5)


def test_a_label_per_series_is_one_prediction_per_series():
    frame = machine_states(n=120, series=8)
    worn = frame["machine"].isin(["m1", "m3", "m5", "m7"])
    frame["state"] = np.where(worn, "worn", "healthy")
    clf = Classifier("naive", per="series")
    clf.fit(frame, label="state", time="t", id="machine")
    out = clf.predict(frame)
    assert list(out["id"]) == [f"m{k}" for k in range(8)]
    assert set(out["label"]) <= {"healthy", "worn"}
    varying = machine_states(series=2)
    with pytest.raises(DataError, match="the label varies within series 'm0'"):
        Classifier("naive", lookback=8, per="series").fit(
            varying, label="state", time="t", id="machine"
        )


def test_an_unseen_class_is_named():
    clf = Classifier("naive", lookback=8).fit(machine_states(), label="state", time="t")
    other = machine_states()
    other.loc[other.index[-5:], "state"] = "exploded"
    with pytest.raises(DataError, match="label 'exploded' was not among the training classes"):
        clf.backtest(other)


def test_anomaly_scores_find_the_spikes(tmp_path):
    frame = spiky()
    det = AnomalyDetector("cfc", lookback=24, units=16, train=FAST)
    det.fit(frame, targets="flow", time="t", label="anomaly")
    result = det.backtest(frame)
    assert result["metrics"]["f1"] > 0.3  # chance level is about 0.03
    truth = result["truth"]
    assert result["scores"][truth].mean() > 3 * result["scores"][~truth].mean()
    scores = det.score(frame)
    assert {"id", "time", "score", "flagged", "anomaly"} <= set(scores)
    det.save(tmp_path / "det")
    again = AnomalyDetector.load(tmp_path / "det")
    assert again.threshold == det.threshold
    assert np.allclose(again.score(frame)["score"], scores["score"], atol=1e-4)


def test_without_labels_the_threshold_is_the_validation_quantile():
    frame = spiky().drop(columns="anomaly")
    det = AnomalyDetector("naive", lookback=8, quantile=0.9).fit(frame, targets="flow", time="t")
    result = det.backtest(frame, part="val")
    assert result["truth"] is None and set(result["metrics"]) == {"flagged_share"}
    assert result["metrics"]["flagged_share"] == pytest.approx(0.1, abs=0.02)


@pytest.mark.parametrize(
    ("task", "args", "columns", "plot"),
    [
        ("classify", ["--label", "state"], {"accuracy", "macro_f1", "auroc"}, "confusion.png"),
        (
            "anomaly",
            ["--target", "flow", "--label", "anomaly"],
            {"precision", "recall", "f1"},
            "anomalies.png",
        ),
    ],
)
def test_the_commands_run_every_task(tmp_path, task, args, columns, plot):
    from click.testing import CliRunner

    from liquidnets.cli import build_cli

    data = tmp_path / "data.csv"
    (machine_states() if task == "classify" else spiky()).to_csv(data, index=False)
    run = tmp_path / "run"
    cli = build_cli()
    common = ["--data", str(data), "--time", "t", "--lookback", "16", "--units", "8"]
    result = CliRunner().invoke(
        cli, ["train", "--task", task, *args, *common, "--max-epochs", "3", "--out", str(run)]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((run / "metrics.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["cfc", "naive", "lstm", "gru"]
    assert columns <= set(rows[0])
    assert (run / "plots" / plot).read_bytes()[:4] == b"\x89PNG"
    result = CliRunner().invoke(cli, ["evaluate", str(run), "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(cli, ["predict", str(run), "--data", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out)
    assert ("label" if task == "classify" else "flagged") in written
    # a classifier's run exports for the edge (a whole window); an anomaly run says it cannot
    model = tmp_path / "window.npz"
    result = CliRunner().invoke(cli, ["export", str(run), "--window", "--out", str(model)])
    if task == "classify":
        from liquidnets import runtime

        assert result.exit_code == 0, result.output
        window = runtime.load(model)
        assert window.window == 16 and window.classes == sorted(set(machine_states()["state"]))
    else:
        assert result.exit_code != 0 and not model.exists()
        assert "a run of task 'anomaly'; export serves forecasters and classifiers" in result.output


def test_classify_without_a_label_is_one_line(tmp_path):
    from click.testing import CliRunner

    from liquidnets.cli import build_cli

    data = tmp_path / "data.csv"
    machine_states().to_csv(data, index=False)
    args = ["train", "--task", "classify", "--data", str(data), "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(build_cli(), args)
    assert result.exit_code != 0 and "needs --label" in result.output
