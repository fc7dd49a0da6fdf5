"""The default forecasting recipe: the season from the timestamps, the window length, the base
chosen per horizon step on validation data, the linear map of the window, and loading models
saved before these existed."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from liquidnets.data import auto_lookback, infer_season, load_series
from liquidnets.tasks import Forecaster
from liquidnets.tasks.models import FromLastValue

FAST = {"max_epochs": 3, "patience": 3, "progress_bar": False}


def hourly(n=24 * 30, seed=0, cycle=1.0, walk=0.0):
    rng = np.random.default_rng(seed)
    t = pd.date_range("2024-01-01", periods=n, freq="h")
    value = cycle * np.sin(2 * np.pi * np.arange(n) / 24) + walk * np.cumsum(rng.normal(size=n))
    return pd.DataFrame({"time": t, "flow": value + 0.05 * rng.normal(size=n)})


@pytest.mark.parametrize(
    ("freq", "season"),
    [("30min", 48), ("h", 24), ("15min", 96), ("D", 7), ("W", 52), ("MS", 12), ("QS", 4)],
)
def test_the_season_comes_from_the_timestamps_step(freq, season):
    times = pd.date_range("2000-01-01", periods=400, freq=freq)
    s = load_series(pd.DataFrame({"t": times, "y": np.arange(400.0)}), targets="y", time="t")
    assert infer_season(s, train_rows=400) == season


def test_no_season_without_a_calendar_or_with_too_little_data():
    years = pd.date_range("1900-01-01", periods=50, freq="YS")
    s = load_series(pd.DataFrame({"t": years, "y": np.arange(50.0)}), targets="y", time="t")
    assert infer_season(s, train_rows=50) is None  # yearly: no cycle to name
    numbers = load_series(
        pd.DataFrame({"t": np.arange(50.0), "y": np.arange(50.0)}), targets="y", time="t"
    )
    assert infer_season(numbers, train_rows=50) is None  # numbers tell no calendar
    hours = pd.date_range("2000-01-01", periods=40, freq="h")
    short = load_series(pd.DataFrame({"t": hours, "y": np.arange(40.0)}), targets="y", time="t")
    assert infer_season(short, train_rows=40) is None  # fewer than two days to train on


def test_the_window_fits_the_training_part():
    assert auto_lookback(None, 1, [1000]) == 32
    assert auto_lookback(24, 12, [1000]) == 48  # two days of hourly readings
    assert auto_lookback(12, 12, [100]) == 24  # 32 does not fit 100 rows four times over
    assert auto_lookback(90, 4, [356]) == 32  # a season of 90 does not fit: 32 does
    assert auto_lookback(None, 6, [20]) == 5  # short series: as long as fits


def test_the_base_reads_the_last_value_or_one_season_back_per_step():
    x = torch.arange(10.0).reshape(1, 10, 1)  # values 0..9, the last is 9
    net = FromLastValue(lambda x, dt: 0, [0], 3, season=4, seasonal=[True, False, True])
    # step k reads position 9 + k - 4: 6 for step 1 and 8 for step 3; step 2 the last value
    assert net.offset(x).tolist() == [[6.0, 9.0, 8.0]]


def test_the_linear_map_starts_at_zero_and_learns_a_trend():
    net = FromLastValue(lambda x, dt: 0, [0], 2, lookback=4, linear=True)
    x = torch.randn(5, 4, 1)
    assert torch.equal(net.offset(x), x[:, -1].repeat(1, 2))  # the naive forecast at first
    assert net.windowed and not FromLastValue(lambda x, dt: 0, [0], 2).windowed


def test_auto_base_takes_the_season_for_a_cycle_and_the_last_value_for_a_walk():
    cycle = Forecaster("naive", horizon=12).fit(hourly(cycle=1.0), targets="flow", time="time")
    assert cycle.season == 24 and cycle.lookback == 48
    cfc = Forecaster("cfc", horizon=12, units=8, train=FAST)
    cfc.fit(hourly(cycle=1.0), targets="flow", time="time")
    assert cfc.base == "season" and all(cfc.seasonal)
    walk = Forecaster("cfc", horizon=2, units=8, train=FAST)
    walk.fit(hourly(cycle=0.0, walk=1.0), targets="flow", time="time")
    assert walk.base == "last" and not any(walk.seasonal)


def test_the_default_beats_naive_on_a_daily_cycle():
    frame = hourly(cycle=1.0, walk=0.02, seed=3)
    model = Forecaster(horizon=12, units=16, train={**FAST, "max_epochs": 15})
    model.fit(frame, targets="flow", time="time")
    naive = Forecaster("naive", horizon=12).fit(frame, targets="flow", time="time")
    assert model.train_config.loss == "mae"
    assert model.backtest(frame)["metrics"]["mae"] < 0.5 * naive.backtest(frame)["metrics"]["mae"]


def test_a_fitted_recipe_saves_and_loads(tmp_path):
    frame = hourly()
    model = Forecaster(horizon=3, units=8, train=FAST).fit(frame, targets="flow", time="time")
    model.save(tmp_path / "m")
    again = Forecaster.load(tmp_path / "m")
    assert (again.season, again.lookback, again.seasonal) == (24, 48, model.seasonal)
    np.testing.assert_allclose(again.predict(frame)["flow"], model.predict(frame)["flow"])


def test_a_model_saved_before_the_recipe_loads_as_it_was(tmp_path):
    frame = hourly()
    old = Forecaster(lookback=16, horizon=2, units=8, season=None, base="last", linear=False,
                     backbone_layers=None, train={**FAST, "loss": "mse"})  # fmt: skip
    old.fit(frame, targets="flow", time="time").save(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    for key in ("base", "seasonal", "linear", "backbone_layers", "mixed_memory"):
        config.pop(key)  # the config of a model saved by liquidnets 0.1.0
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    again = Forecaster.load(tmp_path / "old")
    np.testing.assert_allclose(again.predict(frame)["flow"], old.predict(frame)["flow"])


def test_a_windowed_forecaster_is_refused_by_export_in_one_line(tmp_path):
    pytest.importorskip("onnx")
    from liquidnets.deploy import export

    model = Forecaster(horizon=2, units=8, train=FAST).fit(hourly(), targets="flow", time="time")
    with pytest.raises(ValueError, match="--base last --no-linear") as err:
        export(model, tmp_path / "m.npz")
    assert "\n" not in str(err.value)
