"""The Forecaster from Python: several series, gaps, irregular steps, persistence."""

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("lightning")

from liquidnets.tasks import Forecaster  # noqa: E402

FAST = {"max_epochs": 15, "progress_bar": False, "lr": 1e-2}


def two_sensors(n=400, seed=0):
    """Two machines in one long-format file, sampled at irregular times, with a few gaps."""
    rng = np.random.default_rng(seed)
    frames = []
    for k, name in enumerate(["pump-a", "pump-b"]):
        t = np.cumsum(rng.uniform(0.5, 1.5, size=n))  # irregular sampling
        temp = np.sin(t / 6 + k) + 0.05 * rng.normal(size=n)
        load = np.cos(t / 6 + k)
        frame = pd.DataFrame({"machine": name, "t": t, "temp": temp, "load": load})
        frame.loc[rng.choice(np.arange(10, n), 8, replace=False), "load"] = np.nan
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_several_series_with_gaps_and_irregular_steps(tmp_path):
    frame = two_sensors()
    common = {"targets": "temp", "time": "t", "id": "machine", "missing": "mask"}
    naive = Forecaster("naive", lookback=16, horizon=3).fit(frame, **common)
    model = Forecaster("cfc", lookback=16, horizon=3, units=16, train=FAST).fit(frame, **common)
    assert "load__missing" in model.spec["columns"]
    ours, base = model.backtest(frame)["metrics"], naive.backtest(frame)["metrics"]
    assert ours["mae"] < 0.8 * base["mae"]  # beats the last value on a smooth signal
    forecast = model.predict(frame)
    assert list(forecast["id"]) == ["pump-a"] * 3 + ["pump-b"] * 3
    last = frame.groupby("machine")["t"].max()
    assert (forecast.groupby("id")["time"].min() > last.values).all()
    model.save(tmp_path / "m")
    again = Forecaster.load(tmp_path / "m").predict(frame)
    assert np.allclose(again["temp"], forecast["temp"], atol=1e-4)


def test_new_data_without_gaps_still_fits_a_model_trained_with_masks():
    frame = two_sensors()
    model = Forecaster("naive", lookback=8).fit(
        frame, targets="temp", time="t", id="machine", missing="mask"
    )
    clean = two_sensors().ffill()  # no gaps: no mask columns in this file
    assert len(model.predict(clean)) == 2


@pytest.mark.parametrize("name", ["ltc", "cfc-ncp", "ltc-ncp", "lstm", "gru"])
def test_every_model_trains_through_the_same_interface(name):
    frame = two_sensors(n=200)
    model = Forecaster(name, lookback=8, horizon=2, units=12, train={**FAST, "max_epochs": 2})
    model.fit(frame, targets="temp", time="t", id="machine", missing="interpolate")
    metrics = model.backtest(frame)["metrics"]
    assert set(metrics) == {"mae", "rmse", "smape", "mase", "r2"}
    assert np.isfinite(metrics["mae"])


def test_seasonal_naive_needs_a_season():
    with pytest.raises(ValueError, match="season"):
        Forecaster("seasonal_naive")


def test_several_targets_at_several_steps(tmp_path):
    from liquidnets.tasks.run import train_run

    frame = two_sensors(n=300)
    result = train_run(
        frame, tmp_path / "run", target=["temp", "load"], time="t", id="machine",
        missing="mask", lookback=12, horizon=3, units=8, train={**FAST, "max_epochs": 3},
    )  # fmt: skip
    assert [r["model"] for r in result["rows"]] == ["cfc", "naive", "lstm", "gru"]
    model = Forecaster.load(tmp_path / "run" / "models" / "cfc")
    forecast = model.predict(frame)
    assert {"temp", "load"} <= set(forecast) and len(forecast) == 2 * 3
    backtest = model.backtest(frame)
    assert backtest["predicted"].shape[1:] == (3, 2)  # (windows, horizon, targets)
    assert (tmp_path / "run" / "plots" / "forecast.png").is_file()
