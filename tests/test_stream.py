"""Streaming forecasts with online adaptation (liquidnets.deploy): the step equals the sequence
run, streams are independent, time comes from timestamps, missing values follow the policy,
updates are guarded, and a snapshot continues exactly."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from liquidnets.data import DataError
from liquidnets.deploy import AdaptConfig, PageHinkley, StreamPredictor, make_detector
from liquidnets.deploy.adapt import Learner, ReplayBuffer, select_params
from liquidnets.deploy.drift import RiverDetector, detector_from_state
from liquidnets.tasks import Forecaster

FAST = {"max_epochs": 2, "patience": 2, "progress_bar": False, "accelerator": "cpu", "devices": 1}


def wave(n=400, seed=0, start=0):
    rng = np.random.default_rng(seed)
    t = np.arange(start, start + n, dtype=float)
    temp = np.sin(t / 9) + 0.05 * rng.standard_normal(n)
    load = np.cos(t / 13) + 0.05 * rng.standard_normal(n)
    return pd.DataFrame({"t": t, "temp": temp, "load": load})


@pytest.fixture(scope="module")
def frame():
    return wave()


@pytest.fixture(scope="module", params=["cfc", "ltc", "lstm"])
def model(request, frame):
    m = Forecaster(request.param, lookback=12, horizon=3, units=8, train=FAST)
    return m.fit(frame, targets="temp", time="t")


def by_sequence(model, values, dt):
    """The forecasts of a network run over the whole scaled sequence from a zero state, at every
    step: what a stream that carries its state must give."""
    x = torch.as_tensor(model.scaler.transform(values), dtype=torch.float32)[None]
    dt = torch.as_tensor(dt, dtype=torch.float32)[None]
    inner = model.net.net
    with torch.no_grad():
        if hasattr(inner.rnn, "rnn_cell"):
            inner.rnn.return_sequences = True
            try:
                seq, _ = inner.rnn(x, timespans=dt)
            finally:
                inner.rnn.return_sequences = False
        else:
            seq, _ = inner.rnn(torch.cat([x, dt.unsqueeze(-1)], dim=-1))
        # the offset reads the recent rows; a young stream repeats its first row before them
        L, rows = model.lookback, x[0]
        padded = torch.cat([rows[:1].expand(L - 1, -1), rows])  # (L - 1 + T, C)
        windows = torch.stack([padded[t : t + L] for t in range(len(rows))])  # (T, L, C)
        out = inner.head(seq)[0] + model.net.offset(windows)
    out = out.numpy().reshape(len(values), model.horizon, -1)
    return model.scaler.inverse(out.astype(np.float64), index=model.net.target_index)


def test_each_reading_is_one_step_of_the_sequence(model, frame):
    live = StreamPredictor(model)
    times = np.r_[0.0, np.cumsum(np.random.default_rng(1).choice([0.5, 1.0, 2.5], 59))]
    rows = frame[["load", "temp"]].to_numpy()[:60]
    got = np.stack([live.update(r, timestamp=t).forecast for r, t in zip(rows, times)])
    dt = np.r_[1.0, np.diff(times)]  # the first reading has no predecessor: dt 1
    np.testing.assert_allclose(got, by_sequence(model, rows, dt), rtol=1e-4, atol=1e-5)


def test_streams_are_independent_and_batched(model, frame):
    rows = frame[["load", "temp"]].to_numpy()
    together, alone = StreamPredictor(model), StreamPredictor(model)
    for k in range(30):
        ids = ["a", "b"] if k % 3 else ["b", "a"]  # any order in a call
        steps = together.update_many(ids, [rows[k + (i == "b") * 100] for i in ids], [k, k])
        for step in steps:
            ref = alone.update(rows[k + (step.stream == "b") * 100], k, stream=step.stream)
            np.testing.assert_allclose(step.forecast, ref.forecast, rtol=1e-5, atol=1e-6)
    assert set(together.streams) == {"a", "b"}
    together.reset("a")
    assert set(together.streams) == {"b"}


def test_errors_score_the_forecast_made_one_reading_before(model, frame):
    live = StreamPredictor(model)
    rows = frame[["load", "temp"]].to_numpy()
    first = live.update(rows[0], 0)
    assert first.error is None
    second = live.update(rows[1], 1)
    np.testing.assert_allclose(second.error, rows[1, 1:] - first.forecast[0], atol=1e-5)


def test_timestamps_give_the_elapsed_time():
    frame = wave(200)
    frame["t"] = pd.date_range("2024-01-01", periods=200, freq="10min")
    model = Forecaster("cfc", lookback=8, horizon=1, units=6, train=FAST)
    model.fit(frame, targets="temp", time="t")
    assert model.spec["time_unit"] == "10min"
    rows = frame[["load", "temp"]].to_numpy()[:6]
    stamps = ["2024-02-01 00:00", "2024-02-01 00:10", "2024-02-01 00:40", "2024-02-01 00:45",
              "2024-02-01T02:00:00+01:00", "2024-02-01 01:05"]  # fmt: skip
    live = StreamPredictor(model)
    got = np.stack([live.update(r, timestamp=s).forecast for r, s in zip(rows, stamps)])
    dt = [1.0, 1.0, 3.0, 0.5, 1.5, 0.5]  # in 10-minute units; 02:00+01:00 is 01:00 UTC
    np.testing.assert_allclose(got, by_sequence(model, rows, dt), rtol=1e-4, atol=1e-5)
    with pytest.raises(DataError, match="is not after the previous reading"):
        live.update(rows[0], timestamp="2024-02-01 01:05")
    with pytest.raises(DataError, match="is not a date and time"):
        live.update(rows[0], timestamp=12.0)


def test_bad_readings_are_one_line_and_change_nothing(model, frame):
    live = StreamPredictor(model)
    live.update({"temp": 0.1, "load": 0.2}, 0)
    before = dict(vars(live.streams["0"]))
    cases = [
        ({"temp": 0.1}, "missing \\['load'\\]"),
        ({"temp": 0.1, "load": 0.2, "x": 1}, "unknown \\['x'\\]"),
        ({"temp": "warm", "load": 0.2}, "column 'temp': 'warm' is not a number"),
        ({"temp": float("inf"), "load": 0.2}, "column 'temp'.*infinite"),
        ([0.1, 0.2, 0.3], "expected 2 readings \\(load, temp\\); got 3"),
    ]
    for reading, message in cases:
        with pytest.raises(DataError, match=message):
            live.update(reading, 1)
    with pytest.raises(DataError, match="give a timestamp"):
        live.update([0.1, 0.2])
    # a bad reading in a batch stops the whole call before any stream moves
    with pytest.raises(DataError):
        live.update_many(["0", "new"], [[0.1, 0.2], [0.1, "x"]], [1, 1])
    assert set(live.streams) == {"0"} and live.readings == 1
    assert all(v is before[k] for k, v in vars(live.streams["0"]).items())


def gappy(policy):
    frame = wave(300)
    frame.loc[[20, 21, 90], "load"] = np.nan
    model = Forecaster("cfc", lookback=8, horizon=1, units=6, train=FAST)
    return model.fit(frame, targets="temp", time="t", missing=policy), frame


def test_missing_readings_follow_the_models_policy():
    model, _ = gappy("mask")
    assert "load__missing" in model.spec["columns"]
    live = StreamPredictor(model)
    live.update({"temp": 0.1, "load": 0.5}, 0)
    live.update({"temp": 0.2, "load": None}, 1)
    assert model.spec["columns"] == ["load", "temp", "load__missing"]
    row = live.streams["0"].rows[-1]
    scaled_half = model.scaler.transform(np.array([[0.5, 0.0, 0.0]]))[0, 0]
    assert row[2] == 1.0 and row[0] == pytest.approx(scaled_half)  # masked, held

    dropping, _ = gappy("drop")
    live = StreamPredictor(dropping)
    a = live.update({"temp": 0.1, "load": 0.5}, 0)
    b = live.update({"temp": 0.2, "load": float("nan")}, 1)  # dropped: no step
    assert live.readings == 1 and np.array_equal(a.forecast, b.forecast)
    c = live.update({"temp": 0.3, "load": 0.4}, 3)
    ref = by_sequence(dropping, np.array([[0.5, 0.1], [0.4, 0.3]]), [1.0, 3.0])
    np.testing.assert_allclose(c.forecast, ref[-1], rtol=1e-4, atol=1e-5)

    strict = Forecaster("cfc", lookback=8, horizon=1, units=6, train=FAST)
    strict.fit(wave(200), targets="temp", time="t")
    live = StreamPredictor(strict)
    with pytest.raises(DataError, match="column 'load' is missing; the model was trained with"):
        live.update({"temp": 0.1, "load": None}, 0)
    # in a batch, the gap in the second stream stops the call before the first one moves
    with pytest.raises(DataError, match="stream 'b': column 'load' is missing"):
        live.update_many(["a", "b"], [[0.1, 0.2], [None, 0.1]], [0, 0])
    assert not live.streams and live.readings == 0


def drifting(n=700, at=350, gain=2.5, seed=3):
    """A sine the model learns, whose amplitude jumps by `gain` at `at`."""
    frame = wave(n, seed=seed)
    frame.loc[at:, "temp"] *= gain
    return frame


@pytest.fixture(scope="module")
def trained():
    # the adaptation is measured on a model without the linear map of the window (that map
    # follows an amplitude jump by itself, so the head has little left to correct), trained
    # in batches of 64 as when the test was calibrated
    m = Forecaster(
        "cfc", lookback=16, horizon=1, units=16, linear=False, base="last",
        train={**FAST, "max_epochs": 25, "batch_size": 64},
    )  # fmt: skip
    return m.fit(wave(1200, seed=5), targets="temp", time="t")


def replay(live, frame, start=0):
    steps = []
    for r in frame.iloc[start:].itertuples():
        steps.append(live.update({"temp": r.temp, "load": r.load}, r.t))
    return steps


def test_adapting_after_a_drift_beats_the_frozen_model(trained):
    stream = drifting()
    frozen = replay(StreamPredictor(trained), stream)
    live = StreamPredictor(trained, adapt="drift", max_ms=1e9)  # the head, lr 0.01
    adaptive = replay(live, stream)
    assert any(s.drift for s in adaptive[350:450])
    assert not any(s.drift for s in adaptive[50:340])  # no false alarm before
    assert [e["event"] for e in live.events].count("update") >= 10
    tail = slice(500, 700)  # after the recovery's first updates
    err = lambda steps: np.mean([abs(s.error[0]) for s in steps[tail]])  # noqa: E731
    assert err(adaptive) < 0.97 * err(frozen)  # measured 0.76-0.93 of it over 3 seeds


def test_no_drift_no_harm(trained):
    stream = wave(500, seed=9)
    frozen = replay(StreamPredictor(trained), stream)
    live = StreamPredictor(trained, adapt="every:20", max_ms=1e9, params="all", lr=1e-3)
    adaptive = replay(live, stream)
    err = lambda steps: np.mean([abs(s.error[0]) for s in steps[1:]])  # noqa: E731
    assert err(adaptive) <= 1.02 * err(frozen)
    results = [e["result"] for e in live.events if e["event"] == "update"]
    assert results and set(results) <= {"applied", "rolled_back", "reverted"}


def copy_of(model):
    return Forecaster.from_parts(model.net.state_dict(), model.config(), model.metadata())


def test_updates_touch_only_the_chosen_parameters(trained):
    cell = "net.rnn.rnn_cell"
    gate = {f"{cell}.time_{ab}.{wb}" for ab in "ab" for wb in ("weight", "bias")}
    for which, names in [("head", {"net.head.weight", "net.head.bias"}), ("time", gate)]:
        model = copy_of(trained)
        assert {n for n, _ in select_params(model.net, which)} == names
        before = {n: p.detach().clone() for n, p in model.net.named_parameters()}
        live = StreamPredictor(model, adapt="every:5", params=which, lr=1e-2, max_ms=1e9)
        replay(live, drifting(200, at=50))
        adapted = live.model.net.named_parameters()
        changed = {n for n, p in adapted if not torch.equal(p, before[n])}
        assert changed and changed <= names
        # the caller's model is not the one that learns
        assert all(torch.equal(p, before[n]) for n, p in model.net.named_parameters())
    lstm = Forecaster("lstm", lookback=8, horizon=1, units=6, train=FAST)
    lstm.fit(wave(200), targets="temp", time="t")
    with pytest.raises(ValueError, match="no 'time' parameters"):
        StreamPredictor(lstm, adapt="every:5", params="time")


def buffer_of(net, n=40, seed=0, corrupt=False):
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(64)
    for k in range(n):
        y = rng.standard_normal(1).astype(np.float32)
        if corrupt:
            y[:] = np.nan
        buf.add(
            x=rng.standard_normal((16, 2)).astype(np.float32),
            dt=np.ones(16, np.float32),
            y=y,
            step=k,
            feature=np.ones(net.net.head.in_features, np.float32),
            last=np.zeros(1, np.float32),
        )
    return buf


@pytest.mark.parametrize("params", ["head", "all"])
def test_guard_rails(trained, params):
    net = copy_of(trained).net
    weights = {n: p.detach().clone() for n, p in net.named_parameters()}
    unchanged = lambda: all(torch.equal(p, weights[n]) for n, p in net.named_parameters())  # noqa: E731
    config = AdaptConfig(policy="every", params=params, lr=1e-2, steps=3, max_ms=1e9)
    learner = Learner(net, config)
    assert learner.head_only == (params == "head")  # the stored read-outs, or whole windows
    # a non-finite loss skips the update and leaves the weights and the optimiser
    report = learner.update(buffer_of(net, corrupt=True))
    assert report["result"] == "skipped" and unchanged() and not learner.optimizer.state
    # the held-out part (the newest quarter) contradicts the rest: +3 to learn, -3 to check,
    # so the update makes the held-out loss worse and is rolled back
    buf = buffer_of(net)
    for k, item in enumerate(buf.items):
        item["y"][:] = 3.0 if k < 30 else -3.0
    report = learner.update(buf)
    assert report["result"] == "rolled_back" and report["after"] > report["before"]
    assert unchanged() and not learner.optimizer.state
    # an update that helps is kept, with the optimiser's moments
    for item in buf.items:
        item["y"][:] = 3.0
    assert learner.update(buf)["result"] == "applied" and not unchanged()
    assert learner.optimizer.state
    # the time budget stops the gradient steps (at least one is taken)
    slow = Learner(net, AdaptConfig(policy="every", params=params, steps=50, max_ms=1e-3))
    assert slow.update(buffer_of(net))["steps"] == 1
    # the learning rate is bounded
    with pytest.raises(ValueError, match=r"lr must be in \(0, 0.05\]"):
        AdaptConfig(policy="every", lr=0.5)


@pytest.mark.parametrize(
    "spec, policy, every",
    [("off", "off", 20), ("every:7", "every", 7), ("drift", "drift", 20), ("DRIFT:3", "drift", 3)],
)
def test_adapt_spec(spec, policy, every):
    c = AdaptConfig.parse(spec)
    assert (c.policy, c.every) == (policy, every)


@pytest.mark.parametrize("spec", ["sometimes", "every", "every:0", "every:x", "off:3"])
def test_bad_adapt_spec(spec):
    with pytest.raises(ValueError, match="--adapt"):
        AdaptConfig.parse(spec)


@pytest.mark.parametrize("detector", ["builtin", "adwin"])
def test_a_snapshot_continues_exactly(trained, tmp_path, detector):
    if detector == "adwin":
        pytest.importorskip("river")
    stream = drifting(300, at=120)
    rows = [{"temp": r.temp, "load": r.load} for r in stream.itertuples()]
    kw = {"adapt": "every:10", "max_ms": 1e9, "detector": detector}

    def run(live, part):
        out = []
        for k in part:
            steps = live.update_many(["a", "b"], [rows[k], rows[-1 - k]], [k, k])
            out.append([(s.forecast, s.error, s.drift, s.update) for s in steps])
        return out

    whole = run(StreamPredictor(copy_of(trained), **kw), range(200))
    first = StreamPredictor(copy_of(trained), **kw)
    head = run(first, range(90))
    first.save(tmp_path / "snap")
    first.save(tmp_path / "snap")  # a second snapshot replaces the first
    restored = StreamPredictor.load(tmp_path / "snap")
    assert len(restored.buffer) == len(first.buffer) and restored.readings == 180
    tail = run(restored, range(90, 200))
    for a, b in zip(whole, head + tail, strict=True):
        for (fa, ea, da, ua), (fb, eb, db, ub) in zip(a, b, strict=True):
            np.testing.assert_array_equal(fa, fb)
            assert (ea is None) == (eb is None) and (ea is None or np.array_equal(ea, eb))
            assert (da, ua) == (db, ub)
    updates = [e for e in restored.events if e["event"] == "update"]
    assert any(e["result"] == "applied" for e in updates)


def test_a_snapshot_is_not_a_pickle(trained, tmp_path):
    live = StreamPredictor(trained, adapt="every:5")
    replay(live, wave(40))
    path = live.save(tmp_path / "snap")
    assert sorted(p.name for p in path.iterdir()) == ["model", "stream.json", "stream.st"]
    meta = json.loads((path / "stream.json").read_text())
    assert meta["format"] == "liquidnets-stream" and meta["streams"][0]["id"] == "0"
    (path / "stream.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        StreamPredictor.load(path)
    with pytest.raises(ValueError, match="not a stream snapshot"):
        StreamPredictor.load(tmp_path)


def test_page_hinkley_finds_a_rise_and_not_noise():
    rng = np.random.default_rng(0)
    d = PageHinkley()
    calm = [d.update(abs(v)) for v in rng.standard_normal(5000)]
    assert not any(calm)
    hits = [d.update(abs(v) * 2) for v in rng.standard_normal(300)]
    assert True in hits and hits.index(True) < 120
    clone = detector_from_state(json.loads(json.dumps(d.state())))
    more = rng.standard_normal(100) * 3
    assert [d.update(abs(v)) for v in more] == [clone.update(abs(v)) for v in more]
    assert not d.update(math.nan)
    with pytest.raises(ValueError, match="unknown drift detector"):
        make_detector("cusum")


def test_river_detectors_replay_their_state():
    pytest.importorskip("river")
    rng = np.random.default_rng(1)
    for name in ("adwin", "page_hinkley"):
        d = RiverDetector(name)
        values = np.r_[rng.random(400), rng.random(200) + 2]
        hits = [d.update(v) for v in values]
        assert any(hits[400:]) and not any(hits[:400]), name
        clone = detector_from_state(json.loads(json.dumps(d.state())))
        more = rng.random(300) * 5
        assert [d.update(v) for v in more] == [clone.update(v) for v in more]


def test_the_stream_command_replays_a_file(tmp_path):
    from click.testing import CliRunner

    from liquidnets.cli import build_cli

    train = tmp_path / "train.csv"
    wave(600, seed=5).to_csv(train, index=False)
    run = tmp_path / "run"
    cli = build_cli()
    args = ["train", "--data", str(train), "--time", "t", "--target", "temp", "--lookback", "16"]
    args += ["--units", "8", "--max-epochs", "3", "--no-baselines", "--out", str(run)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    live = tmp_path / "live.csv"
    stream = drifting(500, at=200)
    stream.loc[[50, 51], "load"] = None  # gaps: this model was trained with missing="error"
    stream.to_csv(live, index=False)
    out, snap = tmp_path / "out.csv", tmp_path / "snap"
    base = ["stream", str(run), "--data", str(live), "--out", str(out)]
    result = CliRunner().invoke(cli, base)
    assert result.exit_code != 0
    assert "column 'load'" in result.output and "missing" in result.output and not out.exists()

    stream.loc[[50, 51], "load"] = 0.0
    stream.to_csv(live, index=False)
    result = CliRunner().invoke(cli, [*base, "--adapt", "drift", "--snapshot", str(snap)])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out)
    assert len(written) == 500
    expected = {"id", "time", "temp", "temp_t+1", "temp_error", "temp_frozen_error", "drift"}
    assert expected <= set(written.columns) and "update" in written.columns
    assert written["drift"].iloc[200:300].sum() >= 1
    assert "frozen_before" in result.output and "adaptive_after" in result.output
    restored = StreamPredictor.load(snap)
    assert restored.readings == 500 and restored.config.policy == "drift"
    # the output is not replaced without --overwrite
    again = CliRunner().invoke(cli, [*base, "--adapt", "every:5"])
    assert again.exit_code != 0 and "exists; pass --overwrite" in again.output
    bad = CliRunner().invoke(cli, [*base, "--overwrite", "--adapt", "sometimes"])
    assert bad.exit_code != 0 and "--adapt must be off, every:N, drift or drift:N" in bad.output
